rule prepare_source:
    output:
        "resources/sources/{dataset}{suffix}",
    log:
        "logs/prepare_source/{dataset}{suffix}.log",
    wildcard_constraints:
        suffix=r"\.[A-Za-z0-9.]+",
    conda:
        "../envs/vae.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        source=lambda wc: dataset(wc)["source"],
        sha256=lambda wc: dataset(wc)["sha256"] or None,
    script:
        "../scripts/prepare_source.py"
