"""The domain's one exception hierarchy.

Each error names its gRPC status code (as the ``grpc.StatusCode`` member name)
so the transport maps it in one interceptor; domain modules never import grpc.
"""

from __future__ import annotations


class RecsysError(Exception):
    """Base class: an error whose message is safe to show to the caller."""

    status = "INTERNAL"


class InvalidArgument(RecsysError):
    """The request is malformed; ``field`` names the offending field."""

    status = "INVALID_ARGUMENT"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class NotFound(RecsysError):
    status = "NOT_FOUND"


class Unauthenticated(RecsysError):
    status = "UNAUTHENTICATED"


class Unavailable(RecsysError):
    """A dependency (PostgreSQL) is down; the caller should retry."""

    status = "UNAVAILABLE"


class FailedPrecondition(RecsysError):
    """The request is valid but the system is not in a state to apply it."""

    status = "FAILED_PRECONDITION"
