"""Hostile input for every RPC, built from the proto descriptors (so a new RPC or field is
covered without touching the tests): hypothesis strategies for whole messages, every string
field's path, and what a rejected call must leave unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import psycopg
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st
from psycopg import sql
from recsys.v1 import recsys_pb2 as pb

NASTY_STRINGS = (
    "'; DROP TABLE items; --",
    "x' OR '1'='1",
    '"); DELETE FROM events; --',
    "1; SELECT pg_sleep(5)",
    "$$; TRUNCATE users; $$",
    "\\x00\\' OR 1=1 --",
    "%s %(x)s {0}",
    "\u03a9\u2248\u00e7 \u7530\u4e2d\u3055\u3093 \U0001f3f3\ufe0f\u200d\U0001f308",
    "\u202etxt.exe",  # right-to-left override
    "\U0001d57f\U0001d58d\U0001d58a " * 70,  # over 256 characters, mostly 4-byte UTF-8
    "ß" * 5000,
)
"""SQL-injection attempts and Unicode that is odd, long, or both."""

GUARDED_TABLES = (
    "items",
    "events",
    "event_ids",
    "users",
    "user_state",
    "parameter_versions",
    "experiments",
    "variants",
)
"""Tables a rejected call must leave unchanged (impressions are a log of answered calls)."""


@dataclass(frozen=True)
class Rpc:
    path: str
    request: type[Message]
    admin: bool


def rpcs() -> list[Rpc]:
    """Every method of the Recommender and Admin services."""
    found = []
    for service in pb.DESCRIPTOR.services_by_name.values():
        for method in service.methods:
            request = getattr(pb, method.input_type.name)
            found.append(
                Rpc(f"/{service.full_name}/{method.name}", request, service.name == "Admin")
            )
    return found


def call(
    channel: grpc.Channel, rpc: Rpc, request: bytes, metadata: tuple[tuple[str, str], ...] = ()
) -> grpc.StatusCode:
    """Send raw request bytes to ``rpc``; the status code of the answer."""
    method = channel.unary_unary(rpc.path)
    try:
        method(request, timeout=30, metadata=metadata)
    except grpc.RpcError as error:
        return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


# -- strategies ----------------------------------------------------------------------
_INTS = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
}


def strings() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=20),
        st.sampled_from(NASTY_STRINGS),
        st.text(min_size=250, max_size=300),
    )


def _scalar(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_STRING:
        return strings()
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=50)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return st.integers(-3, 12)  # proto3 enums are open: unknown numbers arrive too
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return messages(field.message_type, depth + 1)
    low, high = _INTS[field.type]
    return st.one_of(st.integers(-2, 20), st.integers(low, high))


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Random messages of ``descriptor``'s type: any subset of fields, any values."""
    cls: type[Message] = (
        getattr(pb, descriptor.name)
        if descriptor.file is pb.DESCRIPTOR
        else _well_known(descriptor)
    )
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if depth > 3 and field.type == FieldDescriptor.TYPE_MESSAGE:
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key = _scalar(field.message_type.fields_by_name["key"], depth)
            value = _scalar(field.message_type.fields_by_name["value"], depth)
            fields[field.name] = st.dictionaries(key, value, max_size=3)
        elif field.is_repeated:
            fields[field.name] = st.lists(_scalar(field, depth), max_size=4)
        else:
            fields[field.name] = _scalar(field, depth)
    return st.fixed_dictionaries({}, optional=fields).map(lambda values: _build(cls, values))


def _well_known(descriptor: Descriptor) -> type[Message]:
    from google.protobuf import timestamp_pb2

    assert descriptor.full_name == "google.protobuf.Timestamp", descriptor.full_name
    return timestamp_pb2.Timestamp


def _build(cls: type[Message], values: dict[str, Any]) -> Message:
    message = cls()
    for name, value in values.items():
        field = cls.DESCRIPTOR.fields_by_name[name]
        target = getattr(message, name) if field.type == FieldDescriptor.TYPE_MESSAGE else None
        if isinstance(value, dict):
            target_map = getattr(message, name)
            for key, entry in value.items():
                if isinstance(entry, Message):
                    target_map[key].CopyFrom(entry)
                else:
                    target_map[key] = entry
        elif isinstance(value, list):
            container = getattr(message, name)
            for entry in value:
                if isinstance(entry, Message):
                    container.add().CopyFrom(entry)
                else:
                    container.append(entry)
        elif target is not None:
            target.CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


# -- string fields --------------------------------------------------------------------
def string_paths(descriptor: Descriptor, prefix: str = "", depth: int = 0) -> Iterator[str]:
    """Dotted paths of every string field (``items.title``; ``context.key``/``.value``
    for maps), one element deep into repeated fields."""
    for field in descriptor.fields:
        path = prefix + field.name
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for part in ("key", "value"):
                if field.message_type.fields_by_name[part].type == FieldDescriptor.TYPE_STRING:
                    yield f"{path}.{part}"
        elif field.type == FieldDescriptor.TYPE_STRING:
            yield path
        elif field.type == FieldDescriptor.TYPE_MESSAGE and depth < 3:
            yield from string_paths(field.message_type, path + ".", depth + 1)


def with_string(message: Message, path: str, value: str) -> Message:
    """A copy of ``message`` with the string at ``path`` set to ``value`` (the first
    element of a repeated field, created when absent)."""
    copy = type(message)()
    copy.CopyFrom(message)
    target: Any = copy
    parts = path.split(".")
    for part in parts[:-1]:
        field = target.DESCRIPTOR.fields_by_name[part]
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            mapping = getattr(target, part)
            if parts[-1] == "key":
                mapping[value]  # reading a missing key adds it with the default value
            else:
                mapping[next(iter(mapping), "k")] = value
            return copy
        container = getattr(target, part)
        if field.is_repeated:
            target = container[0] if len(container) else container.add()
        else:
            target = container
    field = target.DESCRIPTOR.fields_by_name[parts[-1]]
    if field.is_repeated:
        getattr(target, parts[-1]).insert(0, value)
    else:
        setattr(target, parts[-1], value)
    return copy


# -- what must not change --------------------------------------------------------------
def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        query = sql.SQL("SELECT count(*) FROM {}")
        return {
            table: conn.execute(query.format(sql.Identifier(table))).fetchone()[0]  # type: ignore[index]
            for table in GUARDED_TABLES
        }


def retire_items_since(url: str, since: datetime) -> None:
    """Soft-delete items a test created (replicas drop them at their next refresh), so
    what the fuzzer upserted is never recommended to other tests' users."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE items SET deleted_at = now(), updated_at = clock_timestamp()"
            " WHERE created_at >= %s AND deleted_at IS NULL",
            (since,),
        )


def now() -> datetime:
    return datetime.now(UTC)
