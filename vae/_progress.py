"""Progress over fixed-size chunks of a long input."""

from __future__ import annotations

from collections.abc import Iterator


def chunk_ranges(n: int, size: int, what: str) -> Iterator[tuple[int, int]]:
    """Yield ``(start, stop)`` of consecutive chunks of ``size`` items, with a progress bar.

    Parameters
    ----------
    n
        Number of items.
    size
        Items per chunk (the last one may be shorter).
    what
        What is processed, for the progress bar's label (shown only on a terminal).
    """
    from tqdm import tqdm

    for start in tqdm(range(0, n, size), desc=what, unit="chunk", disable=None):
        yield start, min(start + size, n)
