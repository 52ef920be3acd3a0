"""The ``vae`` command line: info, embed, map, sample and score with trained models."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

import vae
from vae._constants import FILES
from vae.errors import VAEInputError


@click.group()
@click.version_option(vae.__version__, prog_name="vae")
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
def cli(verbose: bool) -> None:
    """Variational autoencoders for protein alignments and single-cell counts."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@cli.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
def info(model_dir: Path) -> None:
    """Print a trained model's domain, features, settings and provenance."""
    from vae.model import load_model

    model = load_model(model_dir)
    summary = {
        "domain": model.domain,
        "n_features": len(model.var_names),
        "first_features": model.var_names[:5],
        "module": model.module_kwargs,
        "train": {
            k: v
            for k, v in model.info.get("train", {}).items()
            if k not in ("val_index", "dropped_index")
        },
    }
    manifest = model_dir / FILES.MANIFEST
    if manifest.is_file():
        summary["manifest"] = json.loads(manifest.read_text())
    click.echo(json.dumps(summary, indent=2, default=str))


@cli.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--min-overlap", default=0.8, show_default=True, help="Minimum gene overlap.")
@click.option("--allow-low-overlap", is_flag=True, help="Embed even below --min-overlap.")
@click.option("--layer", default=None, help="AnnData layer holding raw counts (default X).")
@click.option(
    "--max-gap-frac",
    default=0.5,
    show_default=True,
    help="Raw sequences with more gaps in the model's columns after hmmalign are not embedded.",
)
@click.option("--chunk-size", default=10_000, show_default=True, help="Cells/sequences per chunk.")
@click.option(
    "--var-key",
    default=None,
    help="Match genes by this var column (e.g. Ensembl ids) instead of var_names.",
)
def embed(
    model_dir: Path,
    input_path: Path,
    output: Path,
    device: str,
    min_overlap: float,
    allow_low_overlap: bool,
    layer: str | None,
    max_gap_frac: float,
    chunk_size: int,
    var_key: str | None,
) -> None:
    """Embed a new dataset (cells or sequences) with a trained model into OUTPUT (.h5ad).

    Cells: genes matched by name to the model's. Sequences: an alignment holding the
    model's focus columns, or unaligned FASTA (aligned to the family with hmmalign).
    """
    from vae.steps import embed_new

    report = embed_new(
        model_dir,
        input_path,
        output,
        device=device,
        min_overlap=0.0 if allow_low_overlap else min_overlap,
        layer=layer,
        max_gap_frac=max_gap_frac,
        chunk_size=chunk_size,
        var_key=var_key,
    )
    click.echo(json.dumps({k: v for k, v in report.items() if k != "gene_present"}))


@cli.command("map")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("query", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--batch-key", default=None, help="Query batch column (default: the model's).")
@click.option(
    "--epochs",
    default=None,
    type=click.IntRange(min=0),
    help="Query training epochs (default: scvi-tools' min(round(20000/n*400), 400)).",
)
@click.option("--label-key", default=None, help="Reference labels to transfer.")
@click.option(
    "--reference",
    default=None,
    type=click.Path(path_type=Path),
    help="The reference's training data (default: the data in the model's manifest).",
)
@click.option(
    "--uncertainty-threshold",
    default=0.5,
    show_default=True,
    help="Cells with a larger label uncertainty are 'Unknown'.",
)
@click.option("--n-neighbors", default=50, show_default=True, help="Neighbours of the kNN vote.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--min-overlap", default=0.8, show_default=True, help="Minimum gene overlap.")
@click.option("--allow-low-overlap", is_flag=True, help="Map even below --min-overlap.")
@click.option("--layer", default=None, help="AnnData layer holding raw counts (default X).")
@click.option("--var-key", default=None, help="Match genes by this var column.")
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--backed",
    type=click.Choice(["auto", "true", "false"]),
    default="auto",
    show_default=True,
    help="Read the query .h5ad from disk in row blocks (auto: when its counts are large).",
)
def map_(
    model_dir: Path,
    query: Path,
    output: Path,
    batch_key: str | None,
    epochs: int | None,
    label_key: str | None,
    reference: Path | None,
    uncertainty_threshold: float,
    n_neighbors: int,
    device: str,
    min_overlap: float,
    allow_low_overlap: bool,
    layer: str | None,
    var_key: str | None,
    seed: int,
    backed: str,
) -> None:
    """Map new cells from unseen batches onto a trained expression model (scArches).

    Only the query's new batch columns are trained; the reference's labels are carried
    over by a weighted kNN vote. Writes OUTPUT (.h5ad), OUTPUT's manifest, the mapped
    model folder beside it and, when the query has the label column, metrics.
    """
    from vae.steps import map_query

    report = map_query(
        model_dir,
        query,
        output,
        batch_key=batch_key,
        epochs=epochs,
        label_key=label_key,
        reference=reference,
        uncertainty_threshold=uncertainty_threshold,
        n_neighbors=n_neighbors,
        device=device,
        min_overlap=0.0 if allow_low_overlap else min_overlap,
        layer=layer,
        var_key=var_key,
        seed=seed,
        backed={"true": True, "false": False}.get(backed, backed),
    )
    click.echo(json.dumps(report, default=str))


@cli.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@click.option("-n", "--n", "n", default=1000, show_default=True, help="Samples to draw.")
@click.option("--seed", default=0, show_default=True)
def sample(model_dir: Path, output: Path, n: int, seed: int) -> None:
    """Generate samples from the prior: FASTA (protein) or .h5ad counts (expression)."""
    from vae.model import load_model
    from vae.steps import sample_expression, sample_protein

    domain = load_model(model_dir).domain
    (sample_protein if domain == "protein" else sample_expression)(
        model_dir, output, n=n, seed=seed
    )


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--n-samples", default=20, show_default=True, help="Draws per variant.")
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--estimator",
    type=click.Choice(["elbo", "evidence", "profile"]),
    default="elbo",
    show_default=True,
    help="ELBO difference (EVE), importance-weighted log-evidence difference, or the "
    "decoder's profile at the wild type's shrunken latent (the protein preset's).",
)
@click.option(
    "--latent-shrink",
    type=click.FloatRange(0.0, 1.0),
    default=0.25,
    show_default=True,
    help="profile: the fraction of the wild type's latent mean the decoder is read at.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--chunk-size", default=10_000, show_default=True, help="Variants per chunk.")
def score(
    paths: tuple[Path, ...],
    n_samples: int,
    seed: int,
    estimator: str,
    latent_shrink: float,
    device: str,
    chunk_size: int,
) -> None:
    """Score a table of variants: vae score MODEL_DIR... VARIANTS.csv OUTPUT.csv.

    VARIANTS has a 'mutant' (or 'variant') column in the focus numbering: A110D, or
    multiple mutants A110D:N146D (also / or , separated). Several model folders are an
    ensemble: their evol_index is averaged. Every row comes back with its status.
    """
    from vae.steps import score_variant_table

    if len(paths) < 3:
        raise click.UsageError("give one or more model folders, the variant table and OUTPUT")
    counts = score_variant_table(
        list(paths[:-2]),
        paths[-2],
        paths[-1],
        n_samples=n_samples,
        seed=seed,
        device=device,
        estimator=estimator,
        latent_shrink=latent_shrink,
        chunk_size=chunk_size,
    )
    click.echo(json.dumps(counts))


def main() -> None:
    """Entry point: run the CLI, turning input errors into one line and exit code 2."""
    try:
        cli(standalone_mode=False)
    except VAEInputError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        sys.exit(1)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except OSError as err:
        click.echo(f"error: {err.filename or ''}: {err.strerror}", err=True)
        sys.exit(1)
