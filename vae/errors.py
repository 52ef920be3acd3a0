"""Errors raised on bad user input."""

from __future__ import annotations

from pathlib import Path


class VAEInputError(ValueError):
    """A user-facing input problem, reported as one line naming the file or key.

    Parameters
    ----------
    source
        The file path or configuration key that holds the problem.
    problem
        What is wrong, in one sentence.
    """

    def __init__(self, source: str | Path, problem: str) -> None:
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")
