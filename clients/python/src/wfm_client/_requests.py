"""Request construction and connection settings shared by the sync and asyncio clients."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc
from google.protobuf import struct_pb2

from ._convert import to_duration, to_struct, to_timestamp
from ._definition import FILE_KEYS, to_definition
from ._errors import InvalidArgumentError
from ._gen.workflow.v1 import workflow_service_pb2 as pb
from ._types import ExecutionStatus

DEFAULT_TARGET = "127.0.0.1:50051"

JsonObject = Mapping[str, Any] | struct_pb2.Struct
Token = str | Callable[[], str]
Metadata = Sequence[tuple[str, str]]
#: A declarative workflow: a dict shaped like examples/*.yaml, or the message itself.
Definition = Mapping[str, Any] | pb.WorkflowDefinition


def parse_target(target: str) -> tuple[str, bool]:
    """``host:port``, ``http://host:port`` or ``https://host:port`` -> (address, tls)."""
    for scheme, tls in (("http://", False), ("https://", True), ("grpc://", False), ("grpcs://", True)):
        if target.startswith(scheme):
            return target[len(scheme) :].rstrip("/"), tls
    return target, False


def channel_options(options: Sequence[tuple[str, Any]] | None) -> list[tuple[str, Any]]:
    """The channel's options: the caller's, and no receive limit unless they set one.

    gRPC's default receive limit is 4 MiB; the server bounds what it sends by its
    ``limits.max_message_bytes``, which may be set above that, so the client adds no limit of
    its own. ``options=[("grpc.max_receive_message_length", n)]`` sets one.
    """
    out = list(options or ())
    if not any(key == "grpc.max_receive_message_length" for key, _ in out):
        out.append(("grpc.max_receive_message_length", -1))
    return out


class ConnectionSettings:
    """What both clients need to open a channel and decorate each call."""

    def __init__(
        self,
        target: str,
        credentials: grpc.ChannelCredentials | None,
        token: Token | None,
        metadata: Metadata | None,
        timeout: float | None,
    ) -> None:
        address, tls = parse_target(target)
        if credentials is None and tls:
            credentials = grpc.ssl_channel_credentials()
        self.address = address
        self.credentials = credentials
        self._token = token
        self._metadata = tuple(metadata or ())
        self.timeout = timeout

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        md = self._metadata
        if self._token is not None:
            token = self._token() if callable(self._token) else self._token
            md = md + (("authorization", f"Bearer {token}"),)
        return md

    def unary_timeout(self, timeout: float | None) -> float | None:
        return timeout if timeout is not None else self.timeout


def register(
    name: str | None,
    type: str | None,
    definition: Definition | None,
    arguments: JsonObject | None,
    description: str,
    labels: Mapping[str, str] | None,
    max_concurrency: int,
) -> pb.RegisterRequest:
    """The RegisterRequest of a native ``type`` or of a declarative ``definition`` (exactly one).

    A definition dict may also carry a definition file's ``name``, ``description``,
    ``labels`` and ``max_concurrency``, as ``wfm register -f`` reads them: the arguments
    given here win over them, and labels are merged.
    """
    if (type is None) == (definition is None):
        raise ValueError(
            "register: give exactly one of type= (a workflow type compiled into the server) "
            "or definition= (a declarative workflow definition)"
        )
    if definition is not None and arguments is not None:
        raise ValueError("register: arguments= goes with type=; a definition passes arguments to its steps' tools")
    if isinstance(definition, Mapping):
        file = {k: definition[k] for k in FILE_KEYS if k in definition}
        definition = {k: v for k, v in definition.items() if k not in FILE_KEYS}
        name = name or file.get("name")
        description = description or file.get("description", "")
        labels = {**file.get("labels", {}), **(labels or {})}
        max_concurrency = max_concurrency or file.get("max_concurrency", 0)
    req = pb.RegisterRequest(
        name=name or "",
        description=description,
        labels=dict(labels or {}),
        max_concurrency=max_concurrency,
    )
    if definition is not None:
        req.definition.CopyFrom(to_definition(definition))
    else:
        assert type is not None
        req.native.type = type
        req.native.arguments.CopyFrom(json_object("arguments", arguments))
    return req


def list_workflows(page_size: int, page_token: str, label_filter: Mapping[str, str] | None) -> pb.ListRequest:
    return pb.ListRequest(page_size=page_size, page_token=page_token, label_filter=dict(label_filter or {}))


def json_object(what: str, obj: JsonObject | None) -> struct_pb2.Struct:
    """``to_struct(obj)``; a value nested too deeply to convert raises InvalidArgumentError."""
    try:
        return to_struct(obj, what)
    except RecursionError:
        raise InvalidArgumentError(
            f"{what} is nested too deeply: converting it to a google.protobuf.Struct exceeded Python's "
            "recursion limit (the server accepts about 32 levels of nested objects)"
        ) from None


def _fill_run(
    req: pb.ExecuteRequest | pb.StartExecutionRequest,
    name: str,
    input: JsonObject | None,
    version: int,
    metadata: JsonObject | None,
    request_id: str | None,
) -> None:
    req.name = name
    req.version = version
    req.request_id = request_id or ""
    # CopyFrom, not the constructor's keyword arguments: those merge, and merging a Struct
    # serializes and re-parses it, which protobuf refuses past 100 levels of messages.
    req.input.CopyFrom(json_object("input", input))
    if metadata is not None:
        req.metadata.CopyFrom(json_object("metadata", metadata))


def execute(
    name: str, input: JsonObject | None, version: int, metadata: JsonObject | None, request_id: str | None
) -> pb.ExecuteRequest:
    req = pb.ExecuteRequest()
    _fill_run(req, name, input, version, metadata, request_id)
    return req


def start_execution(
    name: str, input: JsonObject | None, version: int, metadata: JsonObject | None, request_id: str | None
) -> pb.StartExecutionRequest:
    req = pb.StartExecutionRequest()
    _fill_run(req, name, input, version, metadata, request_id)
    return req


def list_executions(
    workflow_name: str | None,
    status: ExecutionStatus | int | None,
    create_time_start: _dt.datetime | None,
    create_time_end: _dt.datetime | None,
    page_size: int,
    page_token: str,
) -> pb.ListExecutionsRequest:
    req = pb.ListExecutionsRequest(
        workflow_name=workflow_name or "",
        status=int(status or 0),  # type: ignore[arg-type]
        page_size=page_size,
        page_token=page_token,
    )
    if create_time_start is not None:
        req.create_time_start.CopyFrom(to_timestamp(create_time_start))
    if create_time_end is not None:
        req.create_time_end.CopyFrom(to_timestamp(create_time_end))
    return req


def shutdown(grace_period: _dt.timedelta | float | None, resume_unfinished: bool | None) -> pb.ShutdownRequest:
    req = pb.ShutdownRequest()
    if grace_period is not None:
        req.grace_period.CopyFrom(to_duration(grace_period))
    if resume_unfinished is not None:
        req.resume_unfinished = bool(resume_unfinished)
    return req
