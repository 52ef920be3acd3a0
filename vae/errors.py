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


def unreadable(err: BaseException, what: str) -> str:
    """Return ``not a readable <what> file (<why>)``, saying why when h5py tells.

    Parameters
    ----------
    err
        The reader's exception.
    what
        The kind of file expected, e.g. ``AnnData``.
    """
    text = str(err)
    if "truncated file" in text:
        why = "truncated: shorter than its header says"
    elif "file signature not found" in text:
        why = "not an HDF5 file"
    else:
        why = type(err).__name__
    return f"not a readable {what} file ({why})"
