"""Readers for the MovieLens files, each into a :class:`Dataset`.

Item text is built the way the catalogue builds it (``Item.text()``: title, then
genres as categories, then tags), so a model trained here sees the same content
embedding the serving path computes for the same movie.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from serving.core.domain import EventType, Item
from serving.training.datasets import Dataset, DatasetError, build_dataset, iter_lines

CLICK = int(EventType.CLICK)
Interactions = dict[str, list[tuple[float, str, int]]]
# ml-100k's genre columns, in order (used when u.genre is absent).
ML100K_GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


def _int(path: Path, line: int, value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DatasetError(path, f"{what} must be an integer, got {value!r}", line) from None


def _fields(path: Path, line: int, text: str, sep: str, count: int, what: str) -> list[str]:
    parts = text.split(sep) if sep != " " else text.split()
    if len(parts) < count:
        raise DatasetError(path, f"expected {what}, got {text[:80]!r}", line)
    return parts


def _text(item_id: str, title: str, genres: Sequence[str], tags: Sequence[str] = ()) -> str:
    return Item(item_id, title, categories=tuple(g for g in genres if g), tags=tuple(tags)).text()


def read_movies_dat(path: Path) -> dict[int, tuple[str, list[str]]]:
    """ml-1m ``movies.dat`` (latin-1, ``id::title::genre|genre``) -> id: (title, genres)."""
    movies = {}
    for number, line in iter_lines(path, "latin-1"):
        movie, title, genres = _fields(path, number, line, "::", 3, "id::title::genres")[:3]
        movies[_int(path, number, movie, "movie id")] = (title, genres.split("|"))
    return movies


def load_sasrec(folder: Path) -> Dataset:
    """SASRec's ``ml-1m.txt`` ("user item" per line, each user's items in time order);
    titles and genres from ``movies.dat`` through ``sas_to_original_items.txt`` when
    both are there (otherwise items are known by id only)."""
    data = folder / "ml-1m.txt" if folder.is_dir() else folder
    folder = data.parent
    interactions: Interactions = defaultdict(list)
    for number, line in iter_lines(data):
        user, item = _fields(data, number, line, " ", 2, "'user item'")[:2]
        _int(data, number, user, "user id")
        _int(data, number, item, "item id")
        interactions[user].append((float(number), item, CLICK))
    items = sorted({i for events in interactions.values() for _, i, _ in events}, key=int)
    texts = dict.fromkeys(items, "")
    mapping, movies_path = folder / "sas_to_original_items.txt", folder / "movies.dat"
    if mapping.is_file() and movies_path.is_file():
        movies = read_movies_dat(movies_path)
        for number, line in iter_lines(mapping):
            sas, movie = _fields(mapping, number, line, " ", 2, "'sas_id movie_id'")[:2]
            entry = movies.get(_int(mapping, number, movie, "movie id"))
            if entry is not None and sas in texts:
                texts[sas] = _text(sas, *entry)
    return build_dataset(data.stem, interactions, texts)


def load_ml1m_original(folder: Path) -> Dataset:
    """The ml-1m originals: ``ratings.dat`` (``user::movie::rating::time``) + ``movies.dat``.
    Every rating counts as an interaction (implicit feedback, as in the literature)."""
    ratings = folder / "ratings.dat"
    interactions: Interactions = defaultdict(list)
    for number, line in iter_lines(ratings, "latin-1"):
        user, movie, _, stamp = _fields(
            ratings, number, line, "::", 4, "user::movie::rating::time"
        )[:4]
        _int(ratings, number, movie, "movie id")
        time = _int(ratings, number, stamp, "timestamp")
        interactions[user].append((float(time), movie, CLICK))
    texts = {str(k): _text(str(k), *v) for k, v in read_movies_dat(folder / "movies.dat").items()}
    return build_dataset("ml-1m-original", interactions, texts)


def load_ml100k(folder: Path) -> Dataset:
    """ml-100k: ``u.data`` (tab-separated user, item, rating, time) and ``u.item``
    (pipe-separated, latin-1: id|title|date|video date|url|19 genre flags)."""
    data, item_file = folder / "u.data", folder / "u.item"
    interactions: Interactions = defaultdict(list)
    for number, line in iter_lines(data):
        user, item, _, stamp = _fields(data, number, line, "\t", 4, "user, item, rating, time")[:4]
        _int(data, number, item, "item id")
        interactions[user].append((float(_int(data, number, stamp, "timestamp")), item, CLICK))
    texts = {}
    for number, line in iter_lines(item_file, "latin-1"):
        parts = _fields(item_file, number, line, "|", 5, "id|title|date|video date|url|genres")
        flags = parts[5:]
        genres = [g for g, flag in zip(ML100K_GENRES, flags, strict=False) if flag == "1"]
        texts[parts[0]] = _text(parts[0], parts[1], genres)
    return build_dataset("ml-100k", interactions, texts)


def _csv_rows(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise DatasetError(path, "file not found")
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(path, f"missing column(s) {', '.join(missing)}", 1)
        rows = []
        for row in reader:
            if any(row.get(c) in (None, "") for c in columns):
                raise DatasetError(path, f"empty or missing value in {columns}", reader.line_num)
            rows.append((reader.line_num, row))
        return rows


def load_ml_latest(folder: Path) -> Dataset:
    """ml-latest(-small): ``ratings.csv``, ``movies.csv`` (title, genres) and, when
    present, ``tags.csv`` (free-text tags, added to the item text)."""
    ratings = folder / "ratings.csv"
    interactions: Interactions = defaultdict(list)
    for number, row in _csv_rows(ratings, ("userId", "movieId", "timestamp")):
        stamp = _int(ratings, number, row["timestamp"], "timestamp")
        interactions[row["userId"]].append((float(stamp), row["movieId"], CLICK))
    tags: dict[str, list[str]] = defaultdict(list)
    if (folder / "tags.csv").is_file():
        for _, row in _csv_rows(folder / "tags.csv", ("movieId", "tag")):
            if row["tag"] not in tags[row["movieId"]]:
                tags[row["movieId"]].append(row["tag"])
    texts = {}
    for _, row in _csv_rows(folder / "movies.csv", ("movieId", "title", "genres")):
        genres = [g for g in row["genres"].split("|") if g != "(no genres listed)"]
        texts[row["movieId"]] = _text(row["movieId"], row["title"], genres, tags[row["movieId"]])
    return build_dataset(folder.name, interactions, texts)
