"""`recsys serve` with several orchestrator processes on one host.

Each worker is a whole ``serve``: its own index, pools and sync loops, sharing nothing
but PostgreSQL and Triton. They bind the same gRPC port with SO_REUSEPORT, so the kernel
spreads incoming connections over them (a connection stays with its worker: clients
with one channel reach one worker). Worker ``i`` serves /metrics on
``metrics_port + i``. SIGTERM/SIGINT are passed on, each worker drains as a lone server
does; if one worker exits on its own, the others are stopped and the supervisor exits
non-zero, for whoever supervises it (Kubernetes, `recsys up`) to restart the whole.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal

from serving.config import Settings, log_format
from serving.lifetime import die_with_parent
from serving.server import serve

log = logging.getLogger(__name__)


def serve_workers(settings: Settings) -> int:
    """Serve with ``settings.workers`` processes (one: in this process) until stopped;
    0 when every worker stopped cleanly on request."""
    if settings.workers == 1:
        asyncio.run(serve(settings))
        return 0
    return Workers(settings).run()


class Workers:
    def __init__(self, settings: Settings) -> None:
        context = multiprocessing.get_context("spawn")  # no forked event loops or pools
        self.processes = [
            context.Process(target=_worker, args=(settings, n), name=f"worker-{n}")
            for n in range(settings.workers)
        ]
        self.stopping = False

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: self.stop())
        for process in self.processes:
            process.start()
        while all(process.is_alive() for process in self.processes):
            multiprocessing.connection.wait([p.sentinel for p in self.processes])
        if not self.stopping:
            ended = [f"{p.name}: {p.exitcode}" for p in self.processes if p.exitcode is not None]
            log.error("a worker exited (%s): stopping the others", ", ".join(ended))
            self.stop(requested=False)
        for process in self.processes:
            process.join()
        clean = all(process.exitcode == 0 for process in self.processes)
        return 0 if self.stopping and clean else 1

    def stop(self, requested: bool = True) -> None:
        """SIGTERM to every live worker (``requested``: a stop asked for, not a crash)."""
        self.stopping = self.stopping or requested
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)


def _worker(settings: Settings, number: int) -> None:
    die_with_parent()
    logging.basicConfig(level=settings.log_level, format=log_format(number))
    metrics = settings.metrics_port + number if settings.metrics_port else 0
    asyncio.run(serve(settings.model_copy(update={"metrics_port": metrics})))
