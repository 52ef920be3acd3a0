"""What the protein benchmarks score against: a deep mutational scan and/or ClinVar labels.

Shared by ``protein_dms.py``, ``protein_potts.py`` and ``protein_selection.py``: the same
command-line arguments, the same encoding of the variants onto the alignment's kept
columns, and the same measures (Spearman ρ of ``-evol_index`` with the scan's fitness,
ProteinGym's convention; ROC AUC against the labels).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vae.data import read_variant_labels
from vae.data._mutants import EncodedVariants, encode_variants
from vae.metrics import scan_spearman, variant_auc

#: A scorer maps encoded variants ``(n, L)`` to their ``evol_index`` (higher = more damaging).
Scorer = Callable[[np.ndarray], np.ndarray]


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--name``, ``--alignment``, ``--dms``, ``--score-column`` and ``--labels``."""
    parser.add_argument("--name", required=True)
    parser.add_argument("--alignment", required=True)
    parser.add_argument("--dms", help="CSV with mutant and a fitness column (higher = fitter)")
    parser.add_argument("--score-column", default="score")
    parser.add_argument("--labels", help="ClinVar-style label CSV")


@dataclass
class VariantTargets:
    """The scan (with its fitness) and the labelled variants, encoded on the kept columns."""

    scan: EncodedVariants | None = None
    fitness: np.ndarray | None = None
    labels: EncodedVariants | None = None
    label_table: pd.DataFrame | None = None

    @classmethod
    def load(cls, args: argparse.Namespace, positions: list[int], residues: str) -> VariantTargets:
        """Read ``args.dms`` and ``args.labels`` (either may be absent) for this focus."""
        targets = cls()
        if args.dms:
            table = pd.read_csv(args.dms)
            targets.scan = encode_variants(
                list(table["mutant"]), positions, residues, source=args.dms
            )
            fitness = table.set_index("mutant").loc[targets.scan.names, args.score_column]
            targets.fitness = fitness.to_numpy()
        if args.labels:
            targets.label_table = read_variant_labels(args.labels, args.name)
            targets.labels = encode_variants(
                list(targets.label_table["mutant"]), positions, residues, source=args.labels
            )
        return targets

    def codes(self) -> dict[str, np.ndarray]:
        """Encoded variants by target: ``scan`` and/or ``labels``."""
        out = {}
        if self.scan is not None:
            out["scan"] = self.scan.codes
        if self.labels is not None:
            out["labels"] = self.labels.codes
        return out

    def scores(self, score: Scorer) -> dict[str, np.ndarray]:
        """``evol_index`` of every target's variants under ``score``."""
        return {key: score(codes) for key, codes in self.codes().items()}

    def measure(self, values: dict[str, np.ndarray]) -> dict[str, float]:
        """``spearman`` on the scan and ``roc_auc`` on the labels, from :meth:`scores`."""
        row = {}
        if "scan" in values:
            row["spearman"] = scan_spearman(values["scan"], self.fitness)
        if "labels" in values:
            frame = pd.DataFrame({"mutant": self.labels.names, "evol_index": values["labels"]})
            row["roc_auc"] = variant_auc(frame, self.label_table).get("roc_auc", float("nan"))
        return row

    def metrics(self, score: Scorer) -> dict[str, float]:
        """:meth:`measure` of :meth:`scores`."""
        return self.measure(self.scores(score))

    def counts(self) -> dict[str, dict[str, int]]:
        """Variants scored and skipped, by target."""
        out = {}
        if self.scan is not None:
            out["scan"] = self.scan.counts()
        if self.labels is not None:
            out["labels"] = self.labels.counts()
        return out
