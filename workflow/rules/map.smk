# Mapping of new datasets from unseen batches onto trained expression models (scArches
# surgery: only the new batch columns are trained), with label transfer (config: map.sheet).
rule map_query:
    input:
        model="results/expression/{model}/model",
        reference="results/expression/{model}/preprocessed.h5ad",
        data=lambda wc: str(Path(config["data_dir"]) / map_row(wc)["source"]),
    output:
        mapped="results/map/{model}/{mapped}.h5ad",
        manifest="results/map/{model}/{mapped}.manifest.json",
        model=directory("results/map/{model}/{mapped}_model"),
    log:
        "logs/map_query/{model}/{mapped}.log",
    wildcard_constraints:
        mapped="|".join(MAPPED.index) or "NO_MAPPED",
    conda:
        "../envs/vae.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=120,
    params:
        device=config["device"],
        seed=config["seed"],
        # map.min_overlap; null (the default): embed.min_overlap, as batch embedding
        min_overlap=(
            config["embed"]["min_overlap"]
            if MAP.get("min_overlap") is None
            else MAP["min_overlap"]
        ),
        epochs=map_epochs,
        label_key=map_label_key,
        batch_key=lambda wc: map_row(wc).get("batch_key", "") or None,
        layer=lambda wc: map_row(wc).get("layer", "") or None,
        var_key=lambda wc: map_row(wc).get("var_key", "") or None,
        uncertainty_threshold=MAP["uncertainty_threshold"],
        n_neighbors=MAP["n_neighbors"],
    script:
        "../scripts/map_query.py"
