# Figures of mapped queries (config: map.sheet), drawn from the map step's saved outputs only:
# the mapped .h5ad and the reference cells stored with the mapped model (reference.h5ad).
rule plot_mapping:
    input:
        mapped="results/map/{model}/{mapped}.h5ad",
        model="results/map/{model}/{mapped}_model",
    output:
        umap=report(
            "results/map/{model}/figures/{mapped}_joint_umap.png",
            caption="../report/map_joint_umap.rst",
            category="mapping",
            subcategory="{mapped}",
            labels={"figure": "joint UMAP"},
        ),
        confusion=report(
            "results/map/{model}/figures/{mapped}_confusion.png",
            caption="../report/map_confusion.rst",
            category="mapping",
            subcategory="{mapped}",
            labels={"figure": "confusion matrix"},
        ),
        table=report(
            "results/map/{model}/{mapped}_predicted_labels.tsv",
            caption="../report/map_predicted_labels.rst",
            category="mapping",
            subcategory="{mapped}",
            labels={"figure": "predicted labels (TSV)"},
        ),
    log:
        "logs/plot_mapping/{model}/{mapped}.log",
    wildcard_constraints:
        mapped="|".join(MAPPED.index) or "NO_MAPPED",
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
        "../scripts/plot_mapping.py"
