"""Size buckets: data of a new size do not compile a new program.

A jitted program is specialised to its array shapes, so fitting runs of a size not seen
before traces and compiles again (10-20 s for NUTS, a few seconds for the grid fit).
The fits therefore pad their runs to a *bucket*: the smallest size of the form
``2^k * (1, 1.25, 1.5 or 1.75)`` (at least :data:`MIN_BUCKET`) that holds them. The
padded rows are copies of real runs (finite, in range) that carry weight 0 in the
Huber objective and are masked out of the NUMPyro likelihood, so the fit is the same
function of the real runs; only the summation's length changes (rounding). Datasets
of 200 and 240 runs share one program (bucket 256); no bucket wastes more than a
quarter of its rows.

``BAYESCALE_NO_BUCKETS=1`` turns padding off (every size compiles its own program),
for comparisons.
"""

from __future__ import annotations

import math
import os

import numpy as np

__all__ = ["MIN_BUCKET", "bucket_size", "pad_rows"]

#: The smallest bucket: below it, every size shares one program.
MIN_BUCKET = 16
_STEPS = (1.0, 1.25, 1.5, 1.75)


def bucket_size(n: int) -> int:
    """The padded size for ``n`` rows: ``n`` itself if ``BAYESCALE_NO_BUCKETS`` is set,
    else the smallest ``2^k * s`` (``s`` in 1, 1.25, 1.5, 1.75) at least ``max(n, 16)``.

    >>> [bucket_size(n) for n in (5, 16, 17, 200, 240, 256, 257)]
    [16, 16, 20, 224, 256, 256, 320]
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    if os.environ.get("BAYESCALE_NO_BUCKETS"):
        return n
    if n <= MIN_BUCKET:
        return MIN_BUCKET
    base = 2 ** math.floor(math.log2(n))
    return next((int(base * s) for s in _STEPS if base * s >= n), 2 * base)


def pad_rows(size: int, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """``arrays`` (each with ``n`` rows) padded to ``size`` rows by cycling through the
    real rows, and the ``(size,)`` mask, True on real rows: ``(*padded, mask)``."""
    n = int(np.shape(arrays[0])[0])
    if size < n:
        raise ValueError(f"size {size} is smaller than the {n} rows")
    idx = np.arange(size) % n
    return (*(np.asarray(a)[idx] for a in arrays), np.arange(size) < n)
