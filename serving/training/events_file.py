"""A generic events file (CSV or Parquet: user_id, item_id, timestamp[, type]) and an
optional items file (CSV, Parquet or JSON lines: item_id, title[, description,
categories, tags]) for the item text.

``timestamp`` is a number (unix seconds) or an ISO-8601 date-time; ``type`` an event
name (click, like, ...) or its number; ``categories`` and ``tags`` are ``|``-separated.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from serving.core.domain import EventType, Item
from serving.training.datasets import Dataset, DatasetError, build_dataset, iter_lines

EVENT_COLUMNS = ("user_id", "item_id", "timestamp")
ITEM_COLUMNS = ("item_id", "title")


def _records(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line or row number, values as strings) of a CSV, Parquet or JSON-lines file."""
    if not path.is_file():
        raise DatasetError(path, "file not found")
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as error:  # pyarrow raises several types for a bad file
            raise DatasetError(path, f"not a readable Parquet file ({error})") from None
        missing = [c for c in required if c not in table.column_names]
        if missing:
            raise DatasetError(path, f"missing column(s) {', '.join(missing)}")
        for number, row in enumerate(table.to_pylist(), start=1):
            yield number, {k: "" if v is None else str(v) for k, v in row.items()}
        return
    if suffix in {".jsonl", ".json"}:
        for number, line in iter_lines(path):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DatasetError(path, f"invalid JSON ({error.msg})", number) from None
            if not isinstance(row, dict):
                raise DatasetError(path, "each line must be a JSON object", number)
            yield number, {k: _joined(v) for k, v in row.items()}
        return
    yield from _csv_records(path, required)


def _joined(value: object) -> str:
    if isinstance(value, list):
        return "|".join(str(v) for v in value)
    return "" if value is None else str(value)


def _csv_records(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV file (quoted fields may span lines), numbered by their first line."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise DatasetError(path, f"not utf-8 text ({error.reason})", line) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise DatasetError(path, "empty file")
    missing = [c for c in required if c not in header]
    if missing:
        raise DatasetError(path, f"missing column(s) {', '.join(missing)} in the header", 1)
    number = reader.line_num + 1
    for values in reader:
        if values:
            if len(values) != len(header):
                message = f"expected {len(header)} fields, got {len(values)}"
                raise DatasetError(path, message, number)
            yield number, dict(zip(header, values, strict=True))
        number = reader.line_num + 1


def _timestamp(path: Path, number: int, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise DatasetError(
            path, f"timestamp must be a number or ISO-8601, got {value!r}", number
        ) from None


def _event_type(path: Path, number: int, value: str) -> int:
    if not value:
        return int(EventType.CLICK)
    if value.isdigit() and 0 < int(value) < len(EventType):
        return int(value)
    try:
        return int(EventType[value.strip().upper()])
    except KeyError:
        names = ", ".join(t.name.lower() for t in EventType if t)
        raise DatasetError(path, f"unknown event type {value!r} (one of {names})", number) from None


def load_events_file(events: Path, items: Path | None = None) -> Dataset:
    """The events (and item texts) as a Dataset; every row is checked."""
    interactions: dict[str, list[tuple[float, str, int]]] = defaultdict(list)
    for number, row in _records(events, EVENT_COLUMNS):
        user, item = row.get("user_id", ""), row.get("item_id", "")
        if not user or not item:
            raise DatasetError(events, "user_id and item_id must not be empty", number)
        when = _timestamp(events, number, row.get("timestamp", ""))
        interactions[user].append((when, item, _event_type(events, number, row.get("type", ""))))
    texts: dict[str, str] = {}
    if items is not None:
        for number, row in _records(items, ITEM_COLUMNS):
            if not row.get("item_id") or not row.get("title"):
                raise DatasetError(items, "item_id and title must not be empty", number)
            texts[row["item_id"]] = Item(
                row["item_id"],
                row["title"],
                description=row.get("description", ""),
                categories=tuple(c for c in row.get("categories", "").split("|") if c),
                tags=tuple(t for t in row.get("tags", "").split("|") if t),
            ).text()
    return build_dataset(events.stem, interactions, texts)
