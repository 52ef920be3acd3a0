rule preprocess_protein:
    input:
        source_path,
    output:
        "results/protein/{dataset}/preprocessed.h5ad",
    log:
        "logs/preprocess_protein/{dataset}.log",
    conda:
        "../envs/vae.yaml"
    threads: 2
    resources:
        # one-hot alignment + chunked weight products: grows with sequences x columns
        mem_mb=4000,
        runtime=60,
    params:
        settings=lambda wc: dataset_settings(wc, "preprocess")
        | {"focus_id": dataset(wc)["focus_id"] or None},
        device="cpu",
    script:
        "../scripts/preprocess_protein.py"


rule preprocess_expression:
    input:
        source_path,
    output:
        "results/expression/{dataset}/preprocessed.h5ad",
    log:
        "logs/preprocess_expression/{dataset}.log",
    conda:
        "../envs/vae.yaml"
    threads: 2
    resources:
        # the in-memory route; chunked (preprocess.expression.chunked, in the settings)
        # holds per-cell and per-gene arrays and one block of rows
        mem_mb=8000,
        runtime=60,
    params:
        settings=lambda wc: dataset_settings(wc, "preprocess")
        | {
            "label_key": dataset(wc)["label_key"] or None,
            "batch_key": dataset(wc)["batch_key"] or None,
        },
    script:
        "../scripts/preprocess_expression.py"
