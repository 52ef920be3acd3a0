# Generated sequences (protein) and posterior-predictive cells (expression).
rule sample_protein:
    input:
        model="results/protein/{dataset}/model",
    output:
        "results/protein/{dataset}/samples.fasta",
    log:
        "logs/sample_protein/{dataset}.log",
    conda:
        "../envs/vae.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        n=config["sample"]["n"],
        seed=config["seed"],
    script:
        "../scripts/sample_protein.py"


rule sample_expression:
    input:
        model="results/expression/{dataset}/model",
        data="results/expression/{dataset}/preprocessed.h5ad",
    output:
        "results/expression/{dataset}/samples.h5ad",
    log:
        "logs/sample_expression/{dataset}.log",
    conda:
        "../envs/vae.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        n=config["sample"]["n"],
        seed=config["seed"],
        condition=config["sample"].get("expression_from", "prior"),
        batch=config["sample"].get("batch"),
    script:
        "../scripts/sample_expression.py"
