# Evolutionary index of every single substitution of the focus sequence.
rule score_variants:
    input:
        # the main model, then the further members of a seed ensemble
        models=member_models,
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
        eve_percentiles=config["score"]["eve_percentiles"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/score_variants.py"
