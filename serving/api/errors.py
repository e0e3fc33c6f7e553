"""Domain error statuses -> gRPC status codes: the one place the transport maps them."""

from __future__ import annotations

from types import MappingProxyType

import grpc

from serving.core.errors import RecsysError, Status

STATUS_CODES: MappingProxyType[Status, grpc.StatusCode] = MappingProxyType(
    {
        Status.INTERNAL: grpc.StatusCode.INTERNAL,
        Status.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
        Status.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
        Status.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
        Status.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
        Status.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
        Status.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
"""The gRPC code of every domain status (a unit test checks that none is missing)."""


def grpc_status(error: RecsysError) -> grpc.StatusCode:
    """The gRPC status code ``error`` is answered with."""
    return STATUS_CODES[error.status]
