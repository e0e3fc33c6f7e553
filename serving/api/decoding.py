"""Request bytes -> message, where a malformed request is the caller's error.

gRPC's own deserialisation failure surfaces as INTERNAL; here it becomes
INVALID_ARGUMENT, and so do NUL characters in strings (valid protobuf, but PostgreSQL
text cannot hold them, and no identifier or text of ours needs one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from serving.core.errors import InvalidArgument


@dataclass(frozen=True)
class Undecodable:
    """Stands in for a request that could not be accepted; ``check`` raises its error."""

    field: str
    problem: str


def lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    """A deserializer that never raises: a bad request becomes ``Undecodable``."""

    def parse(data: bytes) -> Any:
        if deserializer is None:
            return data
        try:
            message = deserializer(data)
        except Exception as error:
            return Undecodable("request", f"not a valid message ({type(error).__name__})")
        # Cheap pre-check: a NUL character needs a zero byte somewhere in the encoding.
        if b"\x00" in data and isinstance(message, Message):
            for field in _nul_fields(message, ""):
                return Undecodable(field, "contains a NUL character")
        return message

    return parse


def check(request: Any) -> None:
    """Raise InvalidArgument when ``request`` is a stand-in for a bad one."""
    if isinstance(request, Undecodable):
        raise InvalidArgument(request.field, request.problem)


def _nul_fields(message: Message, prefix: str) -> Iterator[str]:
    for field, value in message.ListFields():
        name = prefix + field.name
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for key, entry in value.items():
                yield from _nul_values(f"{name}[{key!r}]", [key])
                yield from _values(f"{name}[{key!r}]", value_field, [entry])
        elif field.is_repeated:
            for index, entry in enumerate(value):
                yield from _values(f"{name}[{index}]", field, [entry])
        else:
            yield from _values(name, field, [value])


def _values(name: str, field: FieldDescriptor, values: list[Any]) -> Iterator[str]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        for value in values:
            yield from _nul_fields(value, name + ".")
    elif field.type == FieldDescriptor.TYPE_STRING:
        yield from _nul_values(name, values)


def _nul_values(name: str, values: list[Any]) -> Iterator[str]:
    if any(isinstance(v, str) and "\x00" in v for v in values):
        yield name
