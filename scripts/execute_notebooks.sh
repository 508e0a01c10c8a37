#!/usr/bin/env bash
# Rebuild notebooks from their py:percent sources and execute them top to bottom in a fresh
# kernel, in place, with outputs: what is committed. Usage: scripts/execute_notebooks.sh [NAME.py ...]
set -euo pipefail
cd "$(dirname "$0")/../notebooks"
files=("$@")
[ ${#files[@]} -gt 0 ] || files=([0-9][0-9]_*.py)
for py in "${files[@]}"; do
    py=$(basename "$py" .ipynb); py=${py%.py}.py
    nb=${py%.py}.ipynb
    jupytext --quiet --to ipynb --update --output "$nb" "$py" 2>/dev/null || jupytext --quiet --to ipynb --output "$nb" "$py"
    start=$(date +%s.%N)
    jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=300 "$nb"
    printf '%s executed in %.1f s\n' "$nb" "$(echo "$(date +%s.%N) - $start" | bc)"
    jupytext --quiet --sync "$nb"
done
