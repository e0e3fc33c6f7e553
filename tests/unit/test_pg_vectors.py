"""Embeddings in PostgreSQL's binary ``real[]`` format, checked against psycopg's own
array codecs (no database: the wire bytes are the contract)."""

import numpy as np
import pytest
from psycopg import adapt, postgres
from psycopg.pq import Format
from psycopg.types.numeric import Float4

from serving.adapters.postgres.vectors import (
    FLOAT4_ARRAY_OID,
    Float4ArrayDumper,
    Float4ArrayLoader,
)


def psycopg_loader() -> adapt.Loader:
    """psycopg's own binary loader of real[] (lists of Python floats)."""
    loader_class = postgres.adapters.get_loader(FLOAT4_ARRAY_OID, Format.BINARY)
    assert loader_class is not None
    return loader_class(FLOAT4_ARRAY_OID, None)


def test_a_vector_survives_the_round_trip_bit_for_bit() -> None:
    vector = np.random.default_rng(0).standard_normal(384).astype(np.float32)
    wire = Float4ArrayDumper(np.ndarray).dump(vector)
    loaded = Float4ArrayLoader(FLOAT4_ARRAY_OID).load(wire)
    assert loaded.dtype == np.float32
    assert np.array_equal(loaded, vector)


def test_the_dumped_bytes_are_what_postgres_reads_as_real_array() -> None:
    vector = np.array([1.5, -0.25, 3e-8], np.float32)
    wire = Float4ArrayDumper(np.ndarray).dump(vector)
    assert psycopg_loader().load(wire) == pytest.approx([1.5, -0.25, 3e-8], rel=1e-7)


def test_a_real_array_as_psycopg_writes_it_loads_as_the_same_floats() -> None:
    values = [0.1, 2.0, -7.75]
    context = adapt.Transformer()
    wire = context.get_dumper([Float4(0)], adapt.PyFormat.BINARY).dump([Float4(v) for v in values])
    assert wire is not None
    loaded = Float4ArrayLoader(FLOAT4_ARRAY_OID).load(wire)
    assert loaded.tolist() == pytest.approx(values, rel=1e-7)


def test_an_empty_array_is_an_empty_vector() -> None:
    header_only = (0).to_bytes(4, "big") * 3  # no dimensions, no nulls, element oid 0
    assert Float4ArrayLoader(FLOAT4_ARRAY_OID).load(header_only).shape == (0,)


def test_arrays_that_are_no_embedding_are_refused() -> None:
    vector = np.arange(4, dtype=np.float32)
    wire = bytearray(Float4ArrayDumper(np.ndarray).dump(vector))
    wire[4:8] = (1).to_bytes(4, "big")  # "has nulls"
    with pytest.raises(ValueError, match="without nulls"):
        Float4ArrayLoader(FLOAT4_ARRAY_OID).load(bytes(wire))
