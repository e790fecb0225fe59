"""Conversions between plain Python values and protobuf well-known types."""

from __future__ import annotations

import datetime as _dt
import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2
from google.protobuf.message import Message

from ._errors import InvalidValueError

_MAX_SAFE_INT = 2**53
_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*")


def py_to_value(obj: Any, _path: str = "$") -> struct_pb2.Value:
    """A JSON-like Python value (dict, list, str, number, bool, None) as a ``Value``.

    What is not JSON, or would not arrive as given (an integer beyond ±2^53: numbers
    travel as doubles), raises :class:`InvalidValueError` naming where it is.
    """
    v = struct_pb2.Value()
    fill_value(v, obj, _path)
    return v


def to_struct(obj: Mapping[str, Any] | struct_pb2.Struct | None, _path: str = "$") -> struct_pb2.Struct:
    """A dict (or an existing ``Struct``) as a ``Struct``; None gives an empty one."""
    s = struct_pb2.Struct()
    if obj is not None:
        fill_struct(s, obj, _path)
    return s


def fill_struct(s: struct_pb2.Struct, obj: Mapping[str, Any] | struct_pb2.Struct, path: str) -> None:
    """Fills ``s`` in place with the dict ``obj`` (see :func:`to_struct`)."""
    if isinstance(obj, struct_pb2.Struct):
        s.CopyFrom(obj)
    elif isinstance(obj, Mapping):
        _fill_struct(s, obj, path)
    else:
        raise InvalidValueError(f"{path}: expected a dict, got {type(obj).__name__}")


# The message is built in place, top down: no level is built apart and copied or merged
# into its parent (MergeFrom serializes and re-parses, which protobuf refuses past 100
# levels of message nesting, about 32 levels of JSON objects).


def fill_value(v: struct_pb2.Value, obj: Any, path: str) -> None:
    """Fills ``v`` in place with the JSON-like ``obj`` (see :func:`py_to_value`)."""
    if obj is None:
        v.null_value = struct_pb2.NULL_VALUE
    elif isinstance(obj, bool):
        v.bool_value = obj
    elif isinstance(obj, numbers.Integral):
        # A double holds every integer up to 2^53, and not all of them beyond: refused
        # rather than sent rounded (2**53 + 1 would arrive as 2**53), as the wfm CLI does.
        n = int(obj)
        if abs(n) > _MAX_SAFE_INT:
            raise InvalidValueError(
                f"{path}: {n} is beyond ±2^53: JSON numbers travel as doubles and it would arrive changed; "
                "send it as a string"
            )
        v.number_value = float(n)
    elif isinstance(obj, numbers.Real):
        try:
            x = float(obj)
        except OverflowError:
            x = math.inf
        if not math.isfinite(x):
            raise InvalidValueError(f"{path}: {obj} is not JSON (NaN and infinities are not allowed)")
        v.number_value = x
    elif isinstance(obj, str):
        v.string_value = obj
    elif isinstance(obj, struct_pb2.Value):
        v.CopyFrom(obj)
    elif isinstance(obj, struct_pb2.Struct):
        v.struct_value.CopyFrom(obj)
    elif isinstance(obj, Mapping):
        _fill_struct(v.struct_value, obj, path)
    elif isinstance(obj, struct_pb2.ListValue):
        v.list_value.CopyFrom(obj)
    elif isinstance(obj, Sequence) and not isinstance(obj, (bytes, bytearray)):
        values = v.list_value.values
        if not obj:
            v.list_value.SetInParent()
        for i, x in enumerate(obj):
            fill_value(values.add(), x, f"{path}[{i}]")
    else:
        hint = " (convert it to a string, e.g. with isoformat())" if isinstance(obj, (_dt.date, _dt.time)) else ""
        raise InvalidValueError(
            f"{path}: {type(obj).__name__} is not JSON (dict, list, str, number, bool, None){hint}"
        )


def _fill_struct(s: struct_pb2.Struct, obj: Mapping[str, Any], path: str) -> None:
    if not obj:
        s.SetInParent()
    for key, val in obj.items():
        if not isinstance(key, str):
            raise InvalidValueError(f"{path}: keys must be str, got {type(key).__name__}")
        fill_value(s.fields[key], val, child_path(path, key))


def child_path(path: str, key: str) -> str:
    """``path.key``, or ``path["key"]`` for a key that is not an identifier (as the TypeScript client writes it)."""
    return f"{path}.{key}" if _IDENTIFIER.fullmatch(key) else f"{path}[{json.dumps(key)}]"


def _number(x: float) -> int | float:
    # google.protobuf.Value has only doubles: give integral values back as int,
    # as the JSON they stand for would (1.0 -> 1), while exactly representable.
    if math.isfinite(x) and x.is_integer() and abs(x) <= _MAX_SAFE_INT:
        return int(x)
    return x


def value_to_py(v: struct_pb2.Value) -> Any:
    """A ``Value`` as a plain Python value; integral numbers come back as ``int``."""
    out, todo = _shallow(v)
    _fill_in(todo)
    return out


def struct_to_dict(s: struct_pb2.Struct) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(s.fields)
    _fill_in([(out, k, val) for k, val in s.fields.items()])
    return out


# Iterative rather than recursive, so that any depth protobuf decoded converts, whatever
# Python's recursion limit. A container comes back with its slots in order (None for now)
# and the (container, slot, Value) triples still to convert.

_Todo = list[tuple[Any, Any, struct_pb2.Value]]


def _shallow(v: struct_pb2.Value) -> tuple[Any, _Todo]:
    kind = v.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None, []
    if kind == "bool_value":
        return v.bool_value, []
    if kind == "number_value":
        return _number(v.number_value), []
    if kind == "string_value":
        return v.string_value, []
    if kind == "struct_value":
        fields = v.struct_value.fields
        d: dict[str, Any] = dict.fromkeys(fields)
        return d, [(d, k, val) for k, val in fields.items()]
    if kind == "list_value":
        values = v.list_value.values
        items: list[Any] = [None] * len(values)
        return items, [(items, i, val) for i, val in enumerate(values)]
    raise ValueError(f"unknown google.protobuf.Value kind {kind!r}")  # pragma: no cover


def _fill_in(todo: _Todo) -> None:
    while todo:
        container, slot, val = todo.pop()
        container[slot], more = _shallow(val)
        todo.extend(more)


def opt_struct(msg: Message, field: str) -> dict[str, Any] | None:
    """The Struct field as a dict, or None when the field is unset."""
    return struct_to_dict(getattr(msg, field)) if msg.HasField(field) else None


def opt_value(msg: Message, field: str) -> Any:
    """The Value field as a Python value, or None when unset."""
    return value_to_py(getattr(msg, field)) if msg.HasField(field) else None


def opt_time(msg: Message, field: str) -> _dt.datetime | None:
    """The Timestamp field as an aware UTC datetime, or None when unset."""
    if not msg.HasField(field):
        return None
    ts: timestamp_pb2.Timestamp = getattr(msg, field)
    return ts.ToDatetime(tzinfo=_dt.timezone.utc)


def opt_duration(msg: Message, field: str) -> _dt.timedelta | None:
    """The Duration field as a timedelta, or None when unset."""
    if not msg.HasField(field):
        return None
    d: duration_pb2.Duration = getattr(msg, field)
    return d.ToTimedelta()


def to_timestamp(t: _dt.datetime) -> timestamp_pb2.Timestamp:
    """A datetime as a Timestamp; a naive datetime is taken as UTC."""
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(t)
    return ts


def to_duration(d: _dt.timedelta | float | int) -> duration_pb2.Duration:
    """A timedelta, or a number of seconds, as a Duration."""
    out = duration_pb2.Duration()
    if isinstance(d, _dt.timedelta):
        out.FromTimedelta(d)
    else:
        out.FromTimedelta(_dt.timedelta(seconds=float(d)))
    return out
