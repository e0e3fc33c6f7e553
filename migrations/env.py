"""Alembic environment: plain SQL migrations run through SQLAlchemy + psycopg 3."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

from serving.adapters.postgres.db import sqlalchemy_url


def database_url() -> str:
    url = context.config.attributes.get("database_url") or os.environ.get("RECSYS_DATABASE_URL")
    if not url:
        raise SystemExit(
            "Set RECSYS_DATABASE_URL (or run `recsys migrate` for the embedded server)"
        )
    return sqlalchemy_url(url)


def run_offline() -> None:
    context.configure(url=database_url(), literal_binds=True, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transactional_ddl=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
