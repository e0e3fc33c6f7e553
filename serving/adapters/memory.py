"""Memory the process freed, handed back to the operating system.

glibc keeps what is freed in its heaps for reuse (one per thread that allocates: index
builds, the signals worker, gRPC's threads); a catalogue refresh or an index build frees
tens to hundreds of MiB at once. A trim after them hands the free pages back. Arrays of
more than 32 MiB are mapped on their own and go back when freed whatever this does; what
a trim saves alone was not measured (benchmarks/RESULTS.md, "Catalogues of millions,
part 4", on where a million items' memory lies).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``; None on other C libraries (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def resident_mib() -> float:
    """This process's resident memory now (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


_trimming = threading.Lock()


def release_freed_memory() -> None:
    """Return the heaps' free pages to the operating system (where glibc can), in a
    thread of its own: a trim walks every heap, and the caller may be the event loop."""
    if _TRIM is not None and not _trimming.locked():
        threading.Thread(target=_trim, name="malloc-trim", daemon=True).start()


def _trim() -> None:
    if _TRIM is not None and _trimming.acquire(blocking=False):
        try:
            _TRIM(0)
        finally:
            _trimming.release()
