"""Run a step from a workflow script with logging to the rule's log file."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from vae.errors import VAEInputError


def run_logged(
    log_path: str,
    func: Callable[..., Any],
    *args: Any,
    threads: int | None = None,
    **kwargs: Any,
) -> Any:
    """Call ``func`` with logging to ``log_path``; bad input exits 1 with one clear line.

    Parameters
    ----------
    log_path
        The rule's log file.
    func
        The :mod:`vae.steps` function to run.
    *args, **kwargs
        Passed to ``func``.
    threads
        CPU threads granted to the job; torch and numba (sequence weights) use no more
        (oversubscribed cores slow small matrix products down many times).
    """
    if threads is not None:
        import numba
        import torch

        torch.set_num_threads(max(1, int(threads)))
        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    logging.basicConfig(
        filename=log_path,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    try:
        return func(*args, **kwargs)
    except VAEInputError as err:
        logging.getLogger(func.__module__).error("%s", err)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
