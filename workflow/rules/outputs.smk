rule embed_dataset:
    input:
        model=rules.train_model.output.model,
        data=rules.train_model.input[0],
    output:
        "results/{domain}/{dataset}/embedding.h5ad",
    log:
        "logs/embed_dataset/{domain}/{dataset}.log",
    conda:
        "../envs/vae.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        device=config["device"],
        denoised=config["embed"].get("denoised_layer", False),
    script:
        "../scripts/embed_dataset.py"


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
        "../scripts/sample.py"


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
        "../scripts/sample.py"


rule score_variants:
    input:
        model="results/protein/{dataset}/model",
    output:
        "results/protein/{dataset}/variant_scores.csv",
    log:
        "logs/score_variants/{dataset}.log",
    conda:
        "../envs/vae.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        n_samples=config["score"]["n_samples"],
        common_draws=config["score"]["common_draws"],
        estimator=config["score"]["estimator"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/score_variants.py"
