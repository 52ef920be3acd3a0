#!/usr/bin/env bash
# The GPU check on a CUDA machine (see README, "GPU check"): killed after 10 minutes, JSON kept.
cd "$(dirname "$0")/.." && exec timeout -k 30 600 "${PYTHON:-.venv/bin/python}" benchmarks/gpu_check.py "$@"
