# Latent embeddings: a model's own training data, and new datasets with already trained
# models (config: embed.sheet).
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
        # the cluster profile sends this rule to the GPU partition; locally gpu=1 serialises
        # it with the other GPU jobs (training)
        gpu=1,
        mem_mb=8000,
        runtime=60,
    params:
        device=config["device"],
        denoised=config["embed"].get("denoised_layer", False),
    script:
        "../scripts/embed_dataset.py"


rule embed_new_dataset:
    input:
        model=model_dir,
        data=lambda wc: source_path_of(wc.query),
    output:
        embedding="results/embed/{model}/{query}.h5ad",
        manifest="results/embed/{model}/{query}.manifest.json",
    log:
        "logs/embed_new_dataset/{model}/{query}.log",
    conda:
        "../envs/vae.yaml"
    threads: 2
    resources:
        # chunked: memory is bounded by embed.chunk_size, not by the input size
        mem_mb=8000,
        runtime=120,
    params:
        device=config["device"],
        min_overlap=config["embed"]["min_overlap"],
        max_gap_frac=config["embed"]["max_gap_frac"],
        chunk_size=config["embed"]["chunk_size"],
        # expression: the sheet's optional layer and var_key columns (empty: None)
        layer=lambda wc: QUERIES.loc[wc.query].get("layer", "") or None,
        var_key=lambda wc: QUERIES.loc[wc.query].get("var_key", "") or None,
    script:
        "../scripts/embed_new_dataset.py"
