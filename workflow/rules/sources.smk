rule prepare_source:
    output:
        "resources/sources/{name}{suffix}",
    log:
        "logs/prepare_source/{name}{suffix}.log",
    wildcard_constraints:
        name="|".join([*DATASETS.index, *QUERIES.index]),
        suffix=r"\.[A-Za-z0-9.]+",
    conda:
        "../envs/vae.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        source=lambda wc: source_row(wc.name)["source"],
        sha256=lambda wc: source_row(wc.name).get("sha256", "") or None,
    script:
        "../scripts/prepare_source.py"
