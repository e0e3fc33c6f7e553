"""How the item index could hold content embeddings: the cost of reading a request's rows
back as float32, and what it does to their cosine similarities.

    python -m benchmarks.content_codes [--items 10000] [--rows 330]

A request reads the content of its candidate pool (about 330 rows: 300 retrieved, the
coldest items, a query's pool) for the dislike penalty and diversity, and of its history
and chosen items for the profile and the explanations. Random unit 384-d vectors (MiniLM's
width); same process, same rows, best of five repeats of 200 reads.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

import numpy as np

from serving.core import bfloat16

WIDTH = 384


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=330)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    content = rng.standard_normal((args.items, WIDTH)).astype(np.float32)
    content /= np.linalg.norm(content, axis=1, keepdims=True)
    rows = rng.choice(args.items, args.rows, replace=False)
    half, codes = content.astype(np.float16), bfloat16.encode(content)
    reads: dict[str, tuple[int, Callable[[], np.ndarray]]] = {
        "float32": (4, lambda: content[rows]),
        "float16 (numpy astype)": (2, lambda: half[rows].astype(np.float32)),
        "bfloat16 (serving.core.bfloat16)": (2, lambda: bfloat16.decode(codes[rows])),
    }
    exact = content[rows] @ content[rows].T
    print(f"| held as | bytes/value | read {args.rows} rows, µs | max cosine error |")
    print("|---|---:|---:|---:|")
    for name, (size, read) in reads.items():
        seconds = min(timeit.repeat(read, number=200, repeat=5)) / 200
        values = read()
        error = np.abs(values @ values.T - exact).max()
        print(f"| {name} | {size} | {seconds * 1e6:.1f} | {error:.1e} |")
    command = f"python -m benchmarks.content_codes --items {args.items} --rows {args.rows}"
    print(f"\nreproduce: {command}")


if __name__ == "__main__":
    main()
