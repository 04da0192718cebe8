"""The parties' heap (glibc malloc): freed memory kept for the next tensors, not given back.

An op's tensors are large (up to gigabytes at GPT-2 sizes) and short-lived. By default glibc maps
large allocations afresh and unmaps them when freed, so each new tensor page-faults its memory in
again; trimming the heap after each op (as the engine did) has the same effect on the next op.
:func:`keep_freed_memory` makes every allocation come from the heap and keeps freed heap memory
for reuse, so a process's resident memory stays at its high-water mark: the widest op's material
and temporaries, which is its peak either way. Measured on GPT-2 small at T = 128 with the digit
tables (docs/mpc-engine.md): 6 min 41 s instead of 7 min 37 s with a trim after each op (online
18.8 s instead of 31.3 s), peaks client 2.57 / server 5.05 / dealer 1.34 GB instead of 2.18 /
4.87 / 1.34. Elsewhere (no glibc) it does nothing.
"""

from __future__ import annotations

import ctypes
from typing import Any

TRIM_THRESHOLD_BYTES = (1 << 31) - 1
"""No automatic trimming of the heap's top (mallopt's largest value)."""
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters (malloc.h)


def _libc() -> Any:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Every allocation from the heap (M_MMAP_MAX 0), freed memory kept (once per process). True
    where glibc took the settings."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
