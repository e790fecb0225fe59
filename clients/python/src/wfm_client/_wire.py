"""Calling the service with response decoding that neither hangs nor gives up on deep JSON.

Two problems with the generated stub's ``Response.FromString`` deserializers:

* protobuf's upb decoder stops at 100 levels of message nesting, and every level of a
  JSON object is three of them (``Value`` -> ``Struct`` -> map entry), so an execution
  output nested ~32 levels (which the server accepts and returns) cannot be decoded;
* grpc turns any exception raised by a deserializer into an opaque ``INTERNAL:
  Exception deserializing response!``, on a call object whose blocking accessors
  (``debug_error_string()``) then wait forever, and into a bare ``None`` message in
  ``grpc.aio``.

So the clients call the service through :func:`make_callables`, whose deserializers
decode deep messages piecewise (:func:`parse`) and never raise: what they cannot decode
comes back as an :class:`Undecodable`, which the clients turn into a :class:`WfmError`
after cancelling the call.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import grpc
from google.protobuf import descriptor as _descriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from ._errors import InternalError, WfmError
from ._gen.workflow.v1 import workflow_service_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["WorkflowService"]

_LENGTH_DELIMITED = 2


class Undecodable:
    """What a response deserializer returns for bytes it could not decode."""

    __slots__ = ("type_name", "size", "error")

    def __init__(self, type_name: str, size: int, error: BaseException) -> None:
        self.type_name = type_name
        self.size = size
        self.error = error

    def to_error(self) -> WfmError:
        """The :class:`~wfm_client.WfmError` (INTERNAL) to raise for it."""
        if isinstance(self.error, RecursionError):
            limit = sys.getrecursionlimit()
            why = (
                f"it is nested too deeply: this client decodes about {(limit + 100) // 3} levels of "
                f"nested JSON objects with Python's recursion limit of {limit} (sys.setrecursionlimit)"
            )
        else:
            why = f"{type(self.error).__name__}: {self.error}"
        return InternalError(f"could not decode the server's {self.type_name} ({self.size} bytes): {why}")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise DecodeError("truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise DecodeError("varint too long")


def _skip(data: bytes, pos: int, wire_type: int) -> int:
    if wire_type == 0:
        return _varint(data, pos)[1]
    if wire_type == 1:
        return pos + 8
    if wire_type == 5:
        return pos + 4
    if wire_type == _LENGTH_DELIMITED:
        size, pos = _varint(data, pos)
        return pos + size
    raise DecodeError(f"unsupported wire type {wire_type}")


def _is_depth_error(e: DecodeError) -> bool:
    # upb: "... Exceeded upb_DecodeOptions_MaxDepth"; pure Python: "too many levels of nesting".
    text = str(e).lower()
    return "depth" in text or "nesting" in text


def _is_map(field: _descriptor.FieldDescriptor) -> bool:
    mt = field.message_type
    return mt is not None and mt.GetOptions().map_entry


def parse(cls: type[Message], data: bytes) -> Message:
    """``cls.FromString(data)``, but not limited to protobuf's 100 levels of nesting.

    Messages within the limit are decoded by protobuf alone. Deeper ones are split at
    their message-typed fields: each field is decoded on its own (and so again with the
    whole limit available) and copied into place, which needs no re-parsing. Recursion
    is Python's, so the depth that can be decoded is bounded by sys.getrecursionlimit()
    (a RecursionError past it).
    """
    msg = cls()
    try:
        msg.ParseFromString(data)
        return msg
    except DecodeError as e:
        if not _is_depth_error(e):
            raise
    msg = cls()
    fields = cls.DESCRIPTOR.fields_by_number
    rest = bytearray()  # every field that is not a message, decoded by protobuf at the end
    pos, end = 0, len(data)
    while pos < end:
        start = pos
        tag, pos = _varint(data, pos)
        number, wire_type = tag >> 3, tag & 7
        field = fields.get(number)
        if (
            field is None
            or wire_type != _LENGTH_DELIMITED
            or field.type != field.TYPE_MESSAGE
        ):
            pos = _skip(data, pos, wire_type)
            if pos > end:
                raise DecodeError("truncated message")
            rest += data[start:pos]
            continue
        size, pos = _varint(data, pos)
        if pos + size > end:
            raise DecodeError("truncated message")
        sub = parse(GetMessageClass(field.message_type), data[pos : pos + size])
        pos += size
        target = getattr(msg, field.name)
        if _is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            key = getattr(sub, "key")
            if value_field.type == value_field.TYPE_MESSAGE:
                target[key].CopyFrom(getattr(sub, "value"))
            else:
                target[key] = getattr(sub, "value")
        elif field.is_repeated:
            target.add().CopyFrom(sub)
        else:
            # CopyFrom is a deep copy (MergeFrom would serialize and re-parse, hitting the
            # limit again); a singular message field is sent once, so nothing is lost.
            target.CopyFrom(sub)
    if rest:
        msg.MergeFromString(bytes(rest))
    return msg


def deserializer(cls: type[Message]) -> Callable[[bytes], Message | Undecodable]:
    """A response deserializer that never raises (see :class:`Undecodable`)."""

    def deserialize(data: bytes) -> Message | Undecodable:
        try:
            return parse(cls, data)
        except (DecodeError, RecursionError, ValueError) as e:
            return Undecodable(cls.DESCRIPTOR.full_name, len(data), e)

    return deserialize


def make_callables(channel: grpc.Channel | Any) -> SimpleNamespace:
    """The service's methods on ``channel`` (sync or aio), named like the generated stub's."""
    out = SimpleNamespace()
    for method in SERVICE.methods:
        request = GetMessageClass(method.input_type)
        response = GetMessageClass(method.output_type)
        factory = channel.unary_stream if method.server_streaming else channel.unary_unary
        callable_ = factory(
            f"/{SERVICE.full_name}/{method.name}",
            request_serializer=request.SerializeToString,
            response_deserializer=deserializer(response),
            _registered_method=True,
        )
        setattr(out, method.name, callable_)
    return out


def check(resp: Any, what: str) -> Any:
    """``resp``, or the WfmError to raise when the deserializer could not decode it."""
    if isinstance(resp, Undecodable):
        raise resp.to_error()
    if resp is None:  # grpc.aio's stand-in for a message it could not decode
        raise InternalError(f"could not decode the server's {what}")
    return resp
