"""Flush-to-zero for HMMER's threads (vae.data._denormals)."""

from __future__ import annotations

import platform
import sys
import threading

import numpy as np
import pytest

from vae.data._denormals import denormals_flushed, denormals_flushed_now, flush_denormals

KNOWN = sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "aarch64")
pytestmark = pytest.mark.skipif(not KNOWN, reason="flush modes are set on Linux x86-64/AArch64")

TINY = np.float32(1e-38)  # a normal float32 whose product below is denormal (~1e-41)


def _product() -> float:
    return float(TINY * np.float32(1e-3))


def test_the_mode_flushes_denormal_results_in_this_thread_only() -> None:
    assert not denormals_flushed_now()
    assert _product() > 0.0  # IEEE default: gradual underflow
    seen = {}

    def worker() -> None:
        seen["set"] = flush_denormals()
        seen["now"] = denormals_flushed_now()
        seen["product"] = _product()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == {"set": True, "now": True, "product": 0.0}
    assert not denormals_flushed_now()  # the register is per thread
    assert _product() > 0.0


def test_the_context_restores_the_callers_mode() -> None:
    with denormals_flushed() as flushed:
        assert flushed
        assert denormals_flushed_now()
        assert _product() == 0.0
    assert not denormals_flushed_now()
    assert _product() > 0.0
