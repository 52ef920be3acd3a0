# Figures read saved artifacts only: delete results/**/figures and rerun to redraw them.
# The one outside file is a protein's label table (data_dir): an input when configured.
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
        max_cells=config["evaluate"]["max_cells"],
    script:
        "../scripts/plot_latent.py"


rule plot_variants:
    input:
        scores="results/protein/{dataset}/variant_scores.csv",
        labels=lambda wc: optional_path(dataset(wc)["labels"]) or [],
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
        protein=lambda wc: wc.dataset,
    script:
        "../scripts/plot_variants.py"


rule plot_eve_mixture:
    input:
        scores="results/protein/{dataset}/variant_scores.csv",
        labels=lambda wc: optional_path(dataset(wc)["labels"]) or [],
    output:
        report(
            "results/protein/{dataset}/figures/eve_mixture.png",
            caption="../report/eve_mixture.rst",
            category="protein",
            subcategory="{dataset}",
            labels={"figure": "EVE mixture"},
        ),
    log:
        "logs/plot_eve_mixture/{dataset}.log",
    conda:
        "../envs/vae.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        protein=lambda wc: wc.dataset,
        seed=config["seed"],
    script:
        "../scripts/plot_eve_mixture.py"


rule plot_variant_roc:
    input:
        scores="results/protein/{dataset}/variant_scores.csv",
        labels=lambda wc: optional_path(dataset(wc)["labels"]) or [],
    output:
        report(
            "results/protein/{dataset}/figures/variant_roc.png",
            caption="../report/variant_roc.rst",
            category="protein",
            subcategory="{dataset}",
            labels={"figure": "variant ROC"},
        ),
    log:
        "logs/plot_variant_roc/{dataset}.log",
    conda:
        "../envs/vae.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        protein=lambda wc: wc.dataset,
    script:
        "../scripts/plot_variant_roc.py"


rule plot_mutation_heatmap:
    input:
        "results/protein/{dataset}/variant_scores.csv",
    output:
        report(
            "results/protein/{dataset}/figures/mutation_heatmap.png",
            caption="../report/mutation_heatmap.rst",
            category="protein",
            subcategory="{dataset}",
            labels={"figure": "mutational heat map"},
        ),
    log:
        "logs/plot_mutation_heatmap/{dataset}.log",
    conda:
        "../envs/vae.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        row_length=100,  # positions per panel: long proteins wrap into several rows
    script:
        "../scripts/plot_mutation_heatmap.py"


rule plot_sample_frequencies:
    input:
        samples="results/protein/{dataset}/samples.fasta",
        data="results/protein/{dataset}/preprocessed.h5ad",
    output:
        report(
            "results/protein/{dataset}/figures/sample_frequencies.png",
            caption="../report/sample_frequencies.rst",
            category="protein",
            subcategory="{dataset}",
            labels={"figure": "sample vs natural frequencies"},
        ),
    log:
        "logs/plot_sample_frequencies/{dataset}.log",
    conda:
        "../envs/vae.yaml"
    threads: 1
    resources:
        mem_mb=4000,  # the preprocessed alignment is held as N x L indices
        runtime=10,
    script:
        "../scripts/plot_sample_frequencies.py"


rule plot_metrics_table:
    input:
        "results/expression/{dataset}/metrics.json",
    output:
        table=report(
            "results/expression/{dataset}/metrics_table.tsv",
            caption="../report/metrics_table_tsv.rst",
            category="expression",
            subcategory="{dataset}",
            labels={"figure": "metrics table (TSV)"},
        ),
        figure=report(
            "results/expression/{dataset}/figures/metrics_table.png",
            caption="../report/metrics_table.rst",
            category="expression",
            subcategory="{dataset}",
            labels={"figure": "metrics vs PCA baseline"},
        ),
    log:
        "logs/plot_metrics_table/{dataset}.log",
    conda:
        "../envs/vae.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/plot_metrics_table.py"


rule plot_scan:
    input:
        "results/protein/{dataset}/dms_scores.csv",
    output:
        report(
            "results/protein/{dataset}/figures/dms_scatter.png",
            caption="../report/dms_scatter.rst",
            category="protein",
            subcategory="{dataset}",
            labels={"figure": "VAE vs scan"},
        ),
    log:
        "logs/plot_scan/{dataset}.log",
    conda:
        "../envs/vae.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/plot_scan.py"
