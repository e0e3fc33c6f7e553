"""Cross-cutting server behaviour, one interceptor per job: metrics, error mapping,
request decoding, admin authentication, rate limits."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

from serving.api import decoding
from serving.api.errors import grpc_status
from serving.api.ratelimit import TokenBuckets, client_key
from serving.core.errors import RateLimited, RecsysError, Unauthenticated

log = logging.getLogger(__name__)

REQUESTS = Counter(
    "recsys_grpc_requests_total", "gRPC requests by method and status.", ["method", "code"]
)
LATENCY = Histogram(
    "recsys_grpc_request_seconds",
    "gRPC request latency by method.",
    ["method"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10),
)

Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


def _wrap_unary(
    handler: grpc.RpcMethodHandler,
    wrapper: Callable[[Behavior], Behavior],
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(
        wrapper(handler.unary_unary),
        request_deserializer=request_deserializer or handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class _UnaryInterceptor(grpc.aio.ServerInterceptor):
    """Wraps the unary handlers for which ``_wrapper`` gives a wrapper (None: as they are);
    streaming handlers (health's Watch, reflection) pass through."""

    def _wrapper(self, details: grpc.HandlerCallDetails) -> Callable[[Behavior], Behavior] | None:
        raise NotImplementedError

    def _deserializer(self, handler: grpc.RpcMethodHandler) -> Callable[[bytes], Any] | None:
        """The request deserializer to use (None: the handler's own)."""
        return None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        wrapper = self._wrapper(details)
        if wrapper is None:
            return handler
        return _wrap_unary(handler, wrapper, self._deserializer(handler))


class MetricsInterceptor(_UnaryInterceptor):
    """Request counts and latency by method and status. Registered outside the error
    mapping, whose domain errors it labels with the status they are answered with."""

    def _wrapper(self, details: grpc.HandlerCallDetails) -> Callable[[Behavior], Behavior] | None:
        method = details.method.rsplit("/", 1)[-1]

        def wrapper(behavior: Behavior) -> Behavior:
            async def observed(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started = time.perf_counter()
                code = "OK"
                try:
                    return await behavior(request, context)
                except RecsysError as error:
                    code = grpc_status(error).name
                    raise
                except grpc.aio.AbortError:
                    code = "ABORTED_BY_HANDLER"
                    raise
                except Exception:
                    code = "INTERNAL"
                    raise
                finally:
                    REQUESTS.labels(method, code).inc()
                    LATENCY.labels(method).observe(time.perf_counter() - started)

            return observed

        return wrapper


class ErrorInterceptor(_UnaryInterceptor):
    """Domain errors become their status (``serving.api.errors``), anything else a generic
    INTERNAL, logged with its trace. Registered before the interceptors whose errors it
    maps (decoding, admin auth, rate limits)."""

    def _wrapper(self, details: grpc.HandlerCallDetails) -> Callable[[Behavior], Behavior] | None:
        method = details.method.rsplit("/", 1)[-1]

        def wrapper(behavior: Behavior) -> Behavior:
            async def mapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    return await behavior(request, context)
                except RecsysError as error:
                    await context.abort(grpc_status(error), str(error))
                except grpc.aio.AbortError:
                    raise
                except Exception:
                    log.exception("unexpected error in %s", method)
                    await context.abort(grpc.StatusCode.INTERNAL, "internal error")

            return mapped

        return wrapper


class DecodingInterceptor(_UnaryInterceptor):
    """Requests decoded leniently (``serving.api.decoding``): one that is not a valid
    message, or holds a NUL character, is INVALID_ARGUMENT naming the field."""

    def _deserializer(self, handler: grpc.RpcMethodHandler) -> Callable[[bytes], Any] | None:
        return decoding.lenient(handler.request_deserializer)

    def _wrapper(self, details: grpc.HandlerCallDetails) -> Callable[[Behavior], Behavior] | None:
        def wrapper(behavior: Behavior) -> Behavior:
            async def checked(request: Any, context: grpc.aio.ServicerContext) -> Any:
                decoding.check(request)
                return await behavior(request, context)

            return checked

        return wrapper


class AdminAuthInterceptor(_UnaryInterceptor):
    """Methods of the services in ``protected`` need ``authorization: Bearer <token>``."""

    def __init__(self, token: str, protected: tuple[str, ...] = ("/recsys.v1.Admin/",)) -> None:
        self._expected = f"Bearer {token}".encode()
        self._protected = protected

    def _wrapper(self, details: grpc.HandlerCallDetails) -> Callable[[Behavior], Behavior] | None:
        if not details.method.startswith(self._protected):
            return None
        metadata = dict(details.invocation_metadata or ())
        given = str(metadata.get("authorization", "")).encode()
        if hmac.compare_digest(given, self._expected):
            return None

        def wrapper(_: Behavior) -> Behavior:
            async def refuse(request: Any, context: grpc.aio.ServicerContext) -> Any:
                raise Unauthenticated("missing or wrong admin token (authorization: Bearer ...)")

            return refuse

        return wrapper


class RateLimitInterceptor(_UnaryInterceptor):
    """LogFeedback events per client (peer address) through token buckets; a call over
    the client's share is RESOURCE_EXHAUSTED before anything is validated or written."""

    def __init__(
        self, buckets: TokenBuckets, method: str = "/recsys.v1.Recommender/LogFeedback"
    ) -> None:
        self._buckets = buckets
        self._method = method

    def _wrapper(self, details: grpc.HandlerCallDetails) -> Callable[[Behavior], Behavior] | None:
        if details.method != self._method or self._buckets.rate <= 0:
            return None

        def wrapper(behavior: Behavior) -> Behavior:
            async def limited(request: Any, context: grpc.aio.ServicerContext) -> Any:
                cost = max(1, len(request.events))
                if not self._buckets.allow(client_key(context.peer()), cost):
                    raise RateLimited(
                        f"more than {self._buckets.rate:g} events/s from this client; slow down"
                    )
                return await behavior(request, context)

            return limited

        return wrapper
