# Figures read saved artifacts only: delete results/**/figures and rerun to redraw them.
rule plot_training:
    input:
        "results/{domain}/{dataset}/history.tsv",
    output:
        report(
            "results/{domain}/{dataset}/figures/training_curves.png",
            caption="../report/training_curves.rst",
            category="{domain}",
            subcategory="{dataset}",
            labels={"figure": "training curves"},
        ),
    log:
        "logs/plot_training/{domain}/{dataset}.log",
    conda:
        "../envs/vae.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/plot_training.py"


rule plot_latent:
    input:
        "results/{domain}/{dataset}/embedding.h5ad",
    output:
        report(
            "results/{domain}/{dataset}/figures/latent_umap.png",
            caption="../report/latent_umap.rst",
            category="{domain}",
            subcategory="{dataset}",
            labels={"figure": "latent UMAP"},
        ),
    log:
        "logs/plot_latent/{domain}/{dataset}.log",
    conda:
        "../envs/vae.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        seed=config["seed"],
    script:
        "../scripts/plot_latent.py"


rule plot_variants:
    input:
        "results/protein/{dataset}/variant_scores.csv",
    output:
        report(
            "results/protein/{dataset}/figures/variant_scores.png",
            caption="../report/variant_scores.rst",
            category="protein",
            subcategory="{dataset}",
            labels={"figure": "variant scores"},
        ),
    log:
        "logs/plot_variants/{dataset}.log",
    conda:
        "../envs/vae.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        labels=lambda wc: optional_path(dataset(wc)["labels"]),
        protein=lambda wc: wc.dataset,
    script:
        "../scripts/plot_variants.py"
