"""The domain's one exception hierarchy.

Each error carries its status as data (``Status``, named like the members of
``grpc.StatusCode``); the transport maps it to gRPC in one place
(``serving.api.errors``), so nothing in the core imports grpc.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class Status(StrEnum):
    """The status codes domain errors map to (the names of ``grpc.StatusCode`` members)."""

    INTERNAL = "INTERNAL"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    UNAVAILABLE = "UNAVAILABLE"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"


class RecsysError(Exception):
    """Base class: an error whose message is safe to show to the caller."""

    status: ClassVar[Status] = Status.INTERNAL


class InvalidArgument(RecsysError):
    """The request is malformed; ``field`` names the offending field."""

    status = Status.INVALID_ARGUMENT

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class NotFound(RecsysError):
    status = Status.NOT_FOUND


class Unauthenticated(RecsysError):
    status = Status.UNAUTHENTICATED


class Unavailable(RecsysError):
    """A dependency (PostgreSQL, Triton) is down; the caller should retry."""

    status = Status.UNAVAILABLE


class FailedPrecondition(RecsysError):
    """The request is valid but the system is not in a state to apply it."""

    status = Status.FAILED_PRECONDITION


class RateLimited(RecsysError):
    """The client sent more than its share; it should slow down (not retry at once)."""

    status = Status.RESOURCE_EXHAUSTED
