"""A platform of a test's own (its own PostgreSQL, tritonserver and gRPC server) for tests
that break things, started in seconds: it copies the catalogue and the trained user
encoder of the shared session platform instead of embedding and training again."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from serving.adapters.postgres.db import migrate, start_embedded
from serving.adapters.triton.repository import versions
from serving.core.domain import USER_ENCODER
from serving.stack import Stack
from tests.integration.platform import Running, test_settings

SEED_TABLES = ("items", "item_stats", "model_artifacts")
"""What a platform needs to rank: the catalogue, its statistics, the model's item space."""


def copy_tables(source_url: str, target_url: str, tables: tuple[str, ...] = SEED_TABLES) -> None:
    """Copy ``tables`` row for row (binary COPY) into an empty, migrated database."""
    with psycopg.connect(source_url) as source, psycopg.connect(target_url) as target:
        for table in tables:
            out = sql.SQL("COPY {} TO STDOUT (FORMAT binary)").format(sql.Identifier(table))
            into = sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(sql.Identifier(table))
            with source.cursor().copy(out) as reader, target.cursor().copy(into) as writer:
                for chunk in reader:
                    writer.write(chunk)


def seed_state(source: Running, state: Path) -> None:
    """A state folder holding a copy of ``source``'s catalogue and user encoder, so a
    Stack started on it skips seeding and training (both are skipped when data exists)."""
    repository = source.settings.model_repository
    for version in versions(repository, USER_ENCODER):
        shutil.copytree(
            repository / USER_ENCODER / str(version),
            state / "model_repository" / USER_ENCODER / str(version),
        )
    server = start_embedded(state)
    try:
        url = str(server.get_uri())
        migrate(url)
        copy_tables(source.url, url)
    finally:
        server.cleanup()


@contextlib.contextmanager
def own_platform(source: Running, state: Path, **overrides: object) -> Iterator[Stack]:
    """A running Stack of the test's own, seeded from ``source`` (which is only read)."""
    seed_state(source, state)
    stack = Stack(test_settings(state, **overrides), simulate=False, dashboard=False)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
