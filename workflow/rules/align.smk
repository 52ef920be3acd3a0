# Family search: a protein row whose source is one focus sequence gets its alignment here;
# preprocess_protein then reads results/protein/{dataset}/alignment.a2m (common.smk).
check_search_rows()
SEARCH_DATASETS = [name for name in DATASETS.index if search_database(name)]


rule align_family:
    input:
        focus=lambda wc: source_path_of(wc.dataset),
        database=lambda wc: search_database(wc.dataset),
    output:
        alignment="results/protein/{dataset}/alignment.a2m",
        manifest="results/protein/{dataset}/alignment.manifest.json",
        thresholds="results/protein/{dataset}/search_thresholds.tsv",
    log:
        "logs/align_family/{dataset}.log",
    wildcard_constraints:
        dataset="|".join(SEARCH_DATASETS) or "NO_SEARCH_DATASETS",
    conda:
        "../envs/vae.yaml"
    # a CPU job: the database is streamed in blocks, each block split over the threads
    threads: SEARCH.get("threads", 16)
    resources:
        # a few blocks in flight plus the hits; grows with the family, not the database
        mem_mb=8000,
        # UniRef100 (~300 M sequences): hours per round; README "Scale on paper"
        runtime=24 * 60,
    params:
        settings=search_settings,
    script:
        "../scripts/align_family.py"
