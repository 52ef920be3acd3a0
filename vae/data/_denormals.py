"""Flush denormal floats to zero in the calling thread, as HMMER's own programs do.

HMMER's SIMD dynamic programming (posterior decoding, optimal accuracy, Forward/Backward of
the true hits) runs into denormal floats along long delete paths. HMMER's programs set the
CPU's flush-to-zero and denormals-are-zero modes at start (``impl_Init``) and in every
worker thread (HMMER bug h96: a thread that lost the flag slowed down). pyhmmer does not
set them, and the mode is a per-thread register, so on CPUs with slow denormal arithmetic
(measured on an Intel Xeon: 4.7x on one P53 search, same hits) each thread that runs HMMER
sets it here first.

The register is set through the C library's ``fegetenv`` / ``fesetenv`` (no compiled code
of our own): on x86-64 Linux the MXCSR word (FTZ bit 15, DAZ bit 6), on AArch64 Linux the
FPCR word (FZ bit 24). Elsewhere nothing changes and :func:`flush_denormals` says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

#: glibc's ``fenv_t`` as 32-bit words, and the word and bits that hold the flush modes.
_LAYOUTS = {
    "x86_64": (8, 7, (1 << 15) | (1 << 6)),  # ... then ``unsigned int __mxcsr``
    "aarch64": (2, 0, 1 << 24),  # ``{__fpcr, __fpsr}``
}


@cache
def _libm():
    """Return the C math library and this machine's ``fenv_t`` layout (``None``: unknown)."""
    layout = _LAYOUTS.get(platform.machine().lower())
    name = ctypes.util.find_library("m")
    if layout is None or not sys.platform.startswith("linux") or name is None:
        return None
    return ctypes.CDLL(name), layout


def _environment():
    """Return ``(libm, fenv_t buffer, word index, bits)`` of this thread, or ``None``."""
    found = _libm()
    if found is None:
        return None
    libm, (n_words, word, bits) = found
    env = (ctypes.c_uint32 * n_words)()
    if libm.fegetenv(env) != 0:
        return None
    return libm, env, word, bits


def flush_denormals() -> bool:
    """Set flush-to-zero (and denormals-are-zero) in the calling thread.

    Returns
    -------
    bool
        Whether the mode is now set (``False`` on a platform this module does not know).
    """
    found = _environment()
    if found is None:
        return False
    libm, env, word, bits = found
    env[word] |= bits
    return libm.fesetenv(env) == 0


@contextmanager
def denormals_flushed() -> Iterator[bool]:
    """Flush denormals to zero in the calling thread inside the block, then restore.

    Yields whether the mode was set (see :func:`flush_denormals`).
    """
    found = _environment()
    if found is None:
        yield False
        return
    libm, saved, _, _ = found
    try:
        yield flush_denormals()
    finally:
        libm.fesetenv(saved)


def denormals_flushed_now() -> bool:
    """Return whether the calling thread flushes denormals to zero."""
    found = _environment()
    if found is None:
        return False
    _, env, word, bits = found
    return env[word] & bits == bits
