# The protein scoreboard: every protein dataset with a scan or labels, one row per target,
# the VAE next to the site-independent model (results/summary/protein.tsv and a figure).
rule summarise_protein:
    input:
        metrics=expand(
            "results/protein/{dataset}/metrics.json", dataset=SCORED_PROTEINS
        ),
        models=[folder for name in SCORED_PROTEINS for folder in dataset_models(name)],
    output:
        table="results/summary/protein.tsv",
        figure=report(
            "results/summary/figures/protein_gain.png",
            caption="../report/protein_summary.rst",
            category="summary",
            labels={"figure": "protein gain over the site-independent model"},
        ),
    log:
        "logs/summarise_protein/summary.log",
    conda:
        "../envs/vae.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        datasets=SCORED_PROTEINS,
        models=[dataset_models(name) for name in SCORED_PROTEINS],
    script:
        "../scripts/summarise_protein.py"
