"""glibc heap thresholds for out-of-core passes (vae._heap)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = """
import ctypes, ctypes.util
from vae._heap import bound_heap_growth
from vae.data._backed import BackedCounts
print(bound_heap_growth.cache_info().currsize, end=" ")
try:
    BackedCounts("does-not-exist.h5ad")
except Exception:
    pass
print(bound_heap_growth.cache_info().currsize, bound_heap_growth())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_an_out_of_core_reader_fixes_the_thresholds_once_per_process() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True
    )
    # not set at import; set by the first reader; mallopt accepted both values
    assert result.stdout.split() == ["0", "1", "True"]
