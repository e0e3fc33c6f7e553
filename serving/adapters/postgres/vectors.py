"""Embeddings between numpy and PostgreSQL's ``real[]`` in the binary wire format.

In text, every element of an embedding is a Python float on the way in and out (384 per
item, parsed and printed one by one): writing ran at about 800 items/s and reading at
7,000 (``benchmarks/embedding_io.py`` times both ways), and reading 50,000 items left the
process 80 MiB larger than reading them in binary (measured once, by hand). In binary, an
array is a header and fixed-width big-endian elements that numpy reads and writes in one
step. ``embeddings_as_numpy`` sets a cursor up for both.
"""

from __future__ import annotations

import struct

import numpy as np
from psycopg import AsyncCursor, postgres
from psycopg.adapt import Buffer, Dumper, Loader
from psycopg.pq import Format

FLOAT4 = postgres.types["float4"]
FLOAT4_ARRAY_OID = FLOAT4.array_oid
_HEADER = struct.Struct("!iiiii")  # dimensions, has nulls, element oid, length, lower bound
_ELEMENT = np.dtype([("length", ">i4"), ("value", ">f4")])


class Float4ArrayLoader(Loader):
    """A one-dimensional ``real[]`` without nulls as a float32 numpy vector."""

    format = Format.BINARY

    def load(self, data: Buffer) -> np.ndarray:
        if len(data) < 12 or struct.unpack_from("!i", data)[0] == 0:
            return np.zeros(0, np.float32)  # an empty array has no dimensions
        dimensions, has_nulls, _, length, _ = _HEADER.unpack_from(data)
        if dimensions != 1 or has_nulls:
            raise ValueError("an embedding is a one-dimensional real[] without nulls")
        elements = np.frombuffer(data, _ELEMENT, count=length, offset=_HEADER.size)
        return elements["value"].astype(np.float32)


class Float4ArrayDumper(Dumper):
    """A one-dimensional numpy vector as ``real[]`` (rounded to float32)."""

    format = Format.BINARY
    oid = FLOAT4_ARRAY_OID

    def dump(self, obj: np.ndarray) -> Buffer:
        vector = np.asarray(obj, np.float32).ravel()
        elements = np.empty(len(vector), _ELEMENT)
        elements["length"] = 4
        elements["value"] = vector
        return _HEADER.pack(1, 0, FLOAT4.oid, len(vector), 1) + elements.tobytes()


def embeddings_as_numpy(cursor: AsyncCursor) -> AsyncCursor:
    """``cursor``, reading ``real[]`` results as numpy vectors (when the query asks for
    binary results) and writing numpy arrays passed as ``%b`` parameters as ``real[]``."""
    cursor.adapters.register_loader(FLOAT4_ARRAY_OID, Float4ArrayLoader)
    cursor.adapters.register_dumper(np.ndarray, Float4ArrayDumper)
    return cursor
