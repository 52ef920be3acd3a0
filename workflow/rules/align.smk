# Family search: a protein row whose source is one focus sequence gets its alignment here;
# preprocess_protein then reads results/protein/{dataset}/alignment.a2m (or .a3m with
# search.alignment_format: a3m; common.smk).
check_search_rows()
SEARCH_DATASETS = [name for name in DATASETS.index if search_database(name)]


rule align_family:
    input:
        focus=lambda wc: source_path_of(wc.dataset),
        database=lambda wc: search_database(wc.dataset),
    output:
        alignment=f"results/protein/{{dataset}}/alignment.{SEARCH_FORMAT}",
        manifest="results/protein/{dataset}/alignment.manifest.json",
        thresholds="results/protein/{dataset}/search_thresholds.tsv",
    log:
        "logs/align_family/{dataset}.log",
    wildcard_constraints:
        dataset="|".join(SEARCH_DATASETS) or "NO_SEARCH_DATASETS",
    conda:
        "../envs/vae.yaml"
    # a CPU job: the database is read in units of whole records, one per free thread
    threads: SEARCH.get("threads", 16)
    resources:
        # a few units per thread plus the hits; grows with the family, not the database
        mem_mb=8000,
        # UniRef100 (~300 M sequences): hours per round; README "Scale on paper"
        runtime=24 * 60,
    params:
        settings=search_settings,
    script:
        "../scripts/align_family.py"
