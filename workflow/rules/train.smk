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
        domain="{domain}",
        # config model.<domain> / train.<domain> with the dataset's overrides
        model=lambda wc: dataset_settings(wc, "model"),
        train=lambda wc: train_settings(wc, config["seed"]),
        device=config["device"],
        # checkpoints live outside the declared outputs so a killed job resumes
        checkpoint="resources/checkpoints/{domain}/{dataset}.ckpt",
        # protein learning curves (monitor_draws): the scan and labels of the sheet, as
        # params so that editing them does not retrain; training never selects on them
        scan=lambda wc: optional_path(dataset(wc).get("dms", "")),
        labels=lambda wc: optional_path(dataset(wc).get("labels", "")),
        scan_settings=scan_settings,
        # the monitored variants are scored as the scoring step scores them
        score_settings=ESTIMATOR_SETTINGS,
    script:
        "../scripts/train_model.py"


# Further members of a seed ensemble (train.protein.ensemble > 1): one job per seed.
rule train_member:
    input:
        "results/protein/{dataset}/preprocessed.h5ad",
    output:
        model=directory("results/protein/{dataset}/ensemble/seed{seed}/model"),
        history="results/protein/{dataset}/ensemble/seed{seed}/history.tsv",
    log:
        "logs/train_member/{dataset}/seed{seed}.log",
    benchmark:
        "logs/train_member/{dataset}/seed{seed}.benchmark.tsv"
    conda:
        "../envs/vae.yaml"
    threads: 2
    resources:
        # the cluster profile turns gpu=1 into a GPU request; locally it serialises GPU jobs
        gpu=1,
        mem_mb=8000,
        runtime=240,
    params:
        domain="protein",
        model=lambda wc: dataset_settings(wc, "model"),
        train=lambda wc: train_settings(wc, int(wc.seed)),
        device=config["device"],
        # checkpoints live outside the declared outputs so a killed job resumes
        checkpoint="resources/checkpoints/protein/{dataset}.seed{seed}.ckpt",
        # protein learning curves (monitor_draws): the scan and labels of the sheet, as
        # params so that editing them does not retrain; training never selects on them
        scan=lambda wc: optional_path(dataset(wc).get("dms", "")),
        labels=lambda wc: optional_path(dataset(wc).get("labels", "")),
        scan_settings=scan_settings,
        # the monitored variants are scored as the scoring step scores them
        score_settings=ESTIMATOR_SETTINGS,
    script:
        "../scripts/train_model.py"
