rule train_model:
    input:
        "results/{domain}/{dataset}/preprocessed.h5ad",
    output:
        model=directory("results/{domain}/{dataset}/model"),
        history="results/{domain}/{dataset}/history.tsv",
    log:
        "logs/train_model/{domain}/{dataset}.log",
    benchmark:
        "logs/train_model/{domain}/{dataset}.benchmark.tsv"
    conda:
        "../envs/vae.yaml"
    threads: 2
    resources:
        # the cluster profile turns gpu=1 into a GPU request; locally it serialises GPU jobs
        gpu=1,
        mem_mb=8000,
        runtime=240,
    params:
        model=lambda wc: config["model"][wc.domain],
        train=lambda wc: config["train"][wc.domain] | {"seed": config["seed"]},
        device=config["device"],
        # checkpoints live outside the declared outputs so a killed job resumes
        checkpoint="resources/checkpoints/{domain}/{dataset}.ckpt",
        # protein learning curves (monitor_draws): the scan and labels of the sheet, as
        # params so that editing them does not retrain; training never selects on them
        scan=lambda wc: optional_path(dataset(wc).get("dms", "")),
        labels=lambda wc: optional_path(dataset(wc).get("labels", "")),
        scan_settings=scan_settings,
    script:
        "../scripts/train_model.py"
