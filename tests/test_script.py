"""The glue every workflow script uses: logging and the thread budget."""

from __future__ import annotations

import logging

import numba
import torch

from vae._script import run_logged


def test_run_logged_caps_torch_and_numba_threads(tmp_path):
    seen = {}

    def job():
        seen["torch"] = torch.get_num_threads()
        seen["numba"] = numba.get_num_threads()
        return "done"

    before = (torch.get_num_threads(), numba.get_num_threads())
    try:
        assert run_logged(tmp_path / "job.log", job, threads=1) == "done"
    finally:
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])
        root = logging.getLogger()
        for handler in list(root.handlers):
            if isinstance(handler, logging.FileHandler):
                root.removeHandler(handler)
                handler.close()
    assert seen == {"torch": 1, "numba": 1}
