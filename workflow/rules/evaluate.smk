rule evaluate_protein:
    input:
        models=member_models,
        data="results/protein/{dataset}/preprocessed.h5ad",
        scores="results/protein/{dataset}/variant_scores.csv",
        samples="results/protein/{dataset}/samples.fasta",
        scan=optional_input("dms"),
        eve_global=eve_global_input,
    output:
        metrics="results/protein/{dataset}/metrics.json",
        scan_scores="results/protein/{dataset}/dms_scores.csv",
    log:
        "logs/evaluate_protein/{dataset}.log",
    conda:
        "../envs/vae.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        labels=lambda wc: optional_path(dataset(wc)["labels"]),
        protein=lambda wc: wc.dataset,
        scan_settings=scan_settings,
        score_settings={
            "n_samples": config["score"]["n_samples"],
            "common_draws": config["score"]["common_draws"],
            "seed": config["seed"],
        }
        | ESTIMATOR_SETTINGS,
        evidence_samples=config["evaluate"]["evidence_samples"],
        evidence_examples=config["evaluate"]["evidence_examples"],
        seed=config["seed"],
    script:
        "../scripts/evaluate_protein.py"


rule evaluate_expression:
    input:
        model="results/expression/{dataset}/model",
        data="results/expression/{dataset}/preprocessed.h5ad",
        embedding="results/expression/{dataset}/embedding.h5ad",
    output:
        "results/expression/{dataset}/metrics.json",
    log:
        "logs/evaluate_expression/{dataset}.log",
    conda:
        "../envs/vae.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        seed=config["seed"],
        max_cells=config["evaluate"]["max_cells"],
        evidence_samples=config["evaluate"]["evidence_samples"],
        evidence_examples=config["evaluate"]["evidence_examples"],
    script:
        "../scripts/evaluate_expression.py"
