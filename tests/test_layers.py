"""Package layering: the module and data layers do not import each other.

Checked on the source with ``ast`` (every ``import`` statement, also inside functions),
so lazy and relative imports are caught as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vae"

#: Layer folder -> packages none of its files may import.
FORBIDDEN = {
    "module": ("vae.data", "vae.model", "vae.train"),
    "data": ("vae.module", "vae.model", "vae.train"),
    "nn": ("vae.data", "vae.module", "vae.model", "vae.train"),
}


def imported_modules(source: str, package: str) -> set[str]:
    """Absolute names of every module ``source`` (a file of ``package``) imports.

    ``from X import Y`` counts as ``X`` and ``X.Y`` (``Y`` may be a submodule).
    """
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _is_within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_imported_modules_finds_lazy_and_relative_imports():
    source = "import torch\nfrom .. import data\n\ndef f():\n    from ._csr import CSRCounts\n"
    names = imported_modules(source, "vae.module")
    assert {"torch", "vae.data", "vae.module._csr.CSRCounts"} <= names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_does_not_import_forbidden_layers(layer):
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files
    offences = []
    for path in files:
        package = ".".join(path.parent.relative_to(PACKAGE.parent).parts)
        for name in sorted(imported_modules(path.read_text(), package)):
            if any(_is_within(name, forbidden) for forbidden in FORBIDDEN[layer]):
                offences.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert not offences, "\n".join(offences)
