"""Where a training run's data comes from, recorded with the run so ``eval`` can reload it."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from pathlib import Path

from serving.training import movielens
from serving.training.datasets import Dataset, DatasetError
from serving.training.events_file import load_events_file

# Which file in a folder says which MovieLens format it is, in order of preference.
MOVIELENS_MARKERS = (
    ("ml-1m.txt", movielens.load_sasrec),
    ("ratings.dat", movielens.load_ml1m_original),
    ("u.data", movielens.load_ml100k),
    ("ratings.csv", movielens.load_ml_latest),
)


@dataclass(frozen=True)
class DataSource:
    """Exactly one of: a MovieLens folder (or SASRec ``.txt`` file), an events file (with
    an optional items file), or the events logged in PostgreSQL (``database_url``)."""

    path: str | None = None
    events: str | None = None
    items: str | None = None
    database_url: str | None = None

    def __post_init__(self) -> None:
        chosen = [x for x in (self.path, self.events, self.database_url) if x]
        if len(chosen) != 1:
            raise ValueError("give exactly one of --data, --events or --from-db")
        if self.items and not self.events:
            raise ValueError("--items goes with --events")

    def describe(self) -> dict[str, str | None]:
        """For the run record; the database URL (it may hold a password) is left out."""
        record = asdict(self)
        record["database_url"] = "RECSYS_DATABASE_URL" if self.database_url else None
        return record


def load_movielens(path: Path) -> Dataset:
    """Any of the supported MovieLens layouts, recognised by its files."""
    if path.is_file() and path.suffix == ".txt":
        return movielens.load_sasrec(path)
    if not path.is_dir():
        raise DatasetError(path, "no such folder")
    for marker, loader in MOVIELENS_MARKERS:
        if (path / marker).is_file():
            return loader(path)
    names = ", ".join(m for m, _ in MOVIELENS_MARKERS)
    raise DatasetError(path, f"not a MovieLens folder (none of {names})")


def load(source: DataSource) -> Dataset:
    if source.path:
        return load_movielens(Path(source.path))
    if source.events:
        return load_events_file(Path(source.events), Path(source.items) if source.items else None)
    assert source.database_url is not None
    return asyncio.run(_from_database(source.database_url))


async def _from_database(url: str) -> Dataset:
    from serving.adapters.postgres.db import open_pool
    from serving.adapters.triton.content_model import ContentModel
    from serving.config import load_settings
    from serving.training.logged import load_logged_events

    # The stored vectors are used only if they are the configured encoder's.
    encoder = ContentModel.load(load_settings().content_model).fingerprint
    pool = await open_pool(url, 2)
    try:
        return await load_logged_events(pool, encoder=encoder)
    finally:
        await pool.close()
