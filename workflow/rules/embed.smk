# Batch embedding of new datasets with already trained models (config: embed.sheet).
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
    script:
        "../scripts/embed_new_dataset.py"
