"""The gRPC server: the one place that wires adapters, use cases and the API together;
health, reflection, metrics, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server
from psycopg_pool import AsyncConnectionPool
from recsys.v1 import recsys_pb2 as pb
from recsys.v1 import recsys_pb2_grpc as pb_grpc
from threadpoolctl import threadpool_limits

from serving.adapters.memory import release_freed_memory
from serving.adapters.postgres.artifacts import PostgresItemSpaces
from serving.adapters.postgres.db import open_pool, resolve_database_url
from serving.adapters.postgres.experiments import PostgresExperiments
from serving.adapters.postgres.feedback import PostgresFeedback
from serving.adapters.postgres.impressions import ImpressionWriter
from serving.adapters.postgres.items import PostgresItems
from serving.adapters.postgres.listen import NotificationListener
from serving.adapters.postgres.logged import PostgresLoggedLists
from serving.adapters.postgres.parameters import CHANNEL, PostgresParameters
from serving.adapters.postgres.partitions import ensure_event_partitions
from serving.adapters.postgres.rollups import PostgresRollups, RollupRefresher
from serving.adapters.triton.client import TritonEncoders
from serving.adapters.vectorsearch import FaissRetriever
from serving.api.interceptors import (
    AdminAuthInterceptor,
    DecodingInterceptor,
    ErrorInterceptor,
    MetricsInterceptor,
    RateLimitInterceptor,
)
from serving.api.ratelimit import TokenBuckets
from serving.api.servicers import AdminServicer, RecommenderServicer
from serving.app.admin import AdminService
from serving.app.feedback import FeedbackService
from serving.app.items import ItemService
from serving.app.preview import PreviewService
from serving.app.queries import QueryEmbeddings
from serving.app.recommender import RecommenderService
from serving.app.sync import IndexSync, ParameterCache
from serving.config import Settings
from serving.core.index import IndexArrays, ItemIndex

log = logging.getLogger(__name__)
SERVICE_NAMES = (
    pb.DESCRIPTOR.services_by_name["Recommender"].full_name,
    pb.DESCRIPTOR.services_by_name["Admin"].full_name,
)


@dataclass(frozen=True)
class Services:
    """The use cases the API serves."""

    recommender: RecommenderService
    feedback: FeedbackService
    items: ItemService
    admin: AdminService


def create_server(
    settings: Settings, services: Services, health_servicer: health.aio.HealthServicer
) -> grpc.aio.Server:
    """A gRPC server with every service registered, bound to the configured port."""
    server = grpc.aio.server(
        # Outermost first: each sees what the ones after it raise.
        interceptors=[
            MetricsInterceptor(),
            ErrorInterceptor(),
            DecodingInterceptor(),
            AdminAuthInterceptor(settings.admin_token.get_secret_value()),
            RateLimitInterceptor(
                TokenBuckets(settings.feedback_rate_limit, settings.feedback_rate_burst)
            ),
        ],
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            # Workers share the port; a lone server keeps it to itself (a second one
            # started by mistake fails to bind instead of taking half the connections).
            ("grpc.so_reuseport", int(settings.workers > 1)),
        ],
    )
    pb_grpc.add_RecommenderServicer_to_server(
        RecommenderServicer(services.recommender, services.feedback, services.items), server
    )
    pb_grpc.add_AdminServicer_to_server(AdminServicer(services.admin), server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = f"{settings.grpc_host}:{settings.grpc_port}"
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        credentials = grpc.ssl_server_credentials(
            [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())]
        )
        server.add_secure_port(address, credentials)
    else:
        server.add_insecure_port(address)
    return server


@dataclass
class Platform:
    """Everything one server process runs, in start order."""

    pool: AsyncConnectionPool
    encoders: TritonEncoders
    listener: NotificationListener
    index_sync: IndexSync
    impressions: ImpressionWriter
    services: Services
    rollups: RollupRefresher

    @classmethod
    async def start(cls, settings: Settings) -> Platform:
        url = resolve_database_url(settings)
        pool = await open_pool(url, settings.db_pool_size)
        await ensure_event_partitions(pool, datetime.now(UTC))
        encoders = TritonEncoders(
            settings.triton_grpc_url, settings.triton_timeout_ms, coalesce_users=True
        )
        parameter_store, experiments = PostgresParameters(pool), PostgresExperiments(pool)
        await parameter_store.ensure()
        parameters = ParameterCache(parameter_store, experiments)
        await parameters.reload()
        listener = NotificationListener(url, CHANNEL, parameters.reload)
        listener.start()
        index = ItemIndex()
        catalogue = PostgresItems(pool)
        retriever = FaissRetriever(exact_below=settings.exact_search_below)

        def prepare(arrays: IndexArrays) -> None:
            """After a refresh replaced the index's arrays: what retrieval builds on them
            starts, and the memory of the ones replaced goes back to the system."""
            retriever.prepare(arrays)
            release_freed_memory()

        index_sync = IndexSync(
            catalogue,
            PostgresItemSpaces(pool),
            encoders,
            index,
            settings.index_refresh_s,
            prepare=prepare,
        )
        await index_sync.start()
        impressions = ImpressionWriter(
            pool,
            flush_interval_s=settings.impression_flush_ms / 1000,
            batch_size=settings.impression_batch_size,
        )
        impressions.start()
        feedback = PostgresFeedback(pool)
        recommender = RecommenderService(
            index,
            encoders,
            parameters,
            feedback,
            impressions,
            retriever=retriever,
            queries=QueryEmbeddings(encoders, settings.query_cache_size),
        )
        preview = PreviewService(PostgresLoggedLists(pool), feedback, recommender, parameters)
        services = Services(
            recommender=recommender,
            feedback=FeedbackService(feedback, impressions, parameters, PostgresRollups(pool)),
            items=ItemService(catalogue, encoders, index),
            admin=AdminService(parameter_store, experiments, preview),
        )
        rollups = RollupRefresher(pool, settings.rollup_refresh_s)
        rollups.start()
        return cls(pool, encoders, listener, index_sync, impressions, services, rollups)

    async def close(self) -> None:
        await self.rollups.close()
        await self.index_sync.close()
        await self.listener.close()
        await self.impressions.close()
        await self.encoders.close()
        self.services.recommender.close()
        await self.pool.close()


async def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT, then drain: NOT_SERVING first, in-flight calls finish."""
    # One thread for BLAS: a request's products are a few hundred rows, where handing
    # them to a second thread costs more than it saves and takes the core that Triton,
    # PostgreSQL and the other requests need (10,000 items, 2 cores: c=32 throughput 138
    # -> 196/s, c=8 p99 104 -> 72 ms; benchmarks/RESULTS.md). Processes use the cores.
    threadpool_limits(1, user_api="blas")
    platform = await Platform.start(settings)
    # The index and start-up objects live for the whole process: keep them out of the
    # cyclic GC's scans, which otherwise add pauses to tail latency.
    gc.collect()
    gc.freeze()
    health_servicer = health.aio.HealthServicer()
    server = create_server(settings, platform.services, health_servicer)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.grpc_host)
    await server.start()
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "gRPC on %s:%d (%d items, user_encoder v%s)",
        settings.grpc_host,
        settings.grpc_port,
        len(platform.services.recommender.index),
        space.version if (space := platform.services.recommender.index.space) else "-",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: draining for up to %.0fs", settings.shutdown_grace_s)
    await health_servicer.enter_graceful_shutdown()
    await server.stop(settings.shutdown_grace_s)
    with contextlib.suppress(Exception):
        await platform.close()
    log.info("stopped")
