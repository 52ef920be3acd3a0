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
        # the cluster profile sends this rule to the GPU partition; locally gpu=1 serialises
        # it with the other GPU jobs (training)
        gpu=1,
        mem_mb=4000,
        runtime=60,
    params:
        n_samples=config["score"]["n_samples"],
        common_draws=config["score"]["common_draws"],
        estimator=config["score"]["estimator"],
        latent_shrink=config["score"]["latent_shrink"],
        eve_percentiles=config["score"]["eve_percentiles"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/score_variants.py"


# EVE's global + per-protein mixture over every protein of the sheet (score.eve_global_weight).
rule score_eve_global:
    input:
        expand("results/protein/{dataset}/variant_scores.csv", dataset=PROTEINS),
    output:
        expand("results/protein/{dataset}/eve_global.csv", dataset=PROTEINS),
    log:
        "logs/score_eve_global.log",
    conda:
        "../envs/vae.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        proteins=PROTEINS,
        protein_weight=config["score"]["eve_global_weight"],
        eve_percentiles=config["score"]["eve_percentiles"],
        seed=config["seed"],
    script:
        "../scripts/score_eve_global.py"


# Any list of single or multiple mutants (config: score.variant_lists), scored by the
# dataset's model or seed ensemble with the same draws as the scan.
rule score_variant_list:
    input:
        models=member_models,
        variants=variant_list_path,
    output:
        "results/protein/{dataset}/variant_lists/{variant_list}.csv",
    log:
        "logs/score_variant_list/{dataset}/{variant_list}.log",
    conda:
        "../envs/vae.yaml"
    threads: 2
    resources:
        # the cluster profile sends this rule to the GPU partition; locally gpu=1 serialises
        # it with the other GPU jobs (training)
        gpu=1,
        # memory is bounded by score.chunk_size variants, not by the list
        mem_mb=4000,
        runtime=60,
    params:
        n_samples=config["score"]["n_samples"],
        common_draws=config["score"]["common_draws"],
        estimator=config["score"]["estimator"],
        latent_shrink=config["score"]["latent_shrink"],
        chunk_size=config["score"]["chunk_size"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/score_variant_list.py"
