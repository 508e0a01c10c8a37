#!/usr/bin/env bash
# Rebuild notebooks from their py:percent sources and execute them top to bottom in a fresh
# kernel, in place, with outputs: what is committed. Each figure is then stored once, as a
# palette PNG (scripts/slim_notebooks.py), so a chapter stays under 300 kB.
# Usage: scripts/execute_notebooks.sh [NAME.py ...]   (default: every chapter, in order)
#
# The chapters share one model cache (labkit.cache), empty at the start of each call: run in
# order, chapter 3 trains ring8's model and chapters 4-7 load it, as for a student; a chapter run
# on its own trains it. Set LABKIT_KEEP_CACHE=1 to use the user's cache (LABKIT_CACHE_DIR) instead.
set -euo pipefail
cd "$(dirname "$0")/../notebooks"
if [ -z "${LABKIT_KEEP_CACHE:-}" ]; then
    LABKIT_CACHE_DIR=$(mktemp -d -t labkit-cache-XXXXXX)
    export LABKIT_CACHE_DIR
    trap 'rm -rf "$LABKIT_CACHE_DIR"' EXIT
fi
files=("$@")
[ ${#files[@]} -gt 0 ] || files=([0-9][0-9]_*.py)
for py in "${files[@]}"; do
    py=$(basename "$py" .ipynb); py=${py%.py}.py
    nb=${py%.py}.ipynb
    jupytext --quiet --to ipynb --update --output "$nb" "$py" 2>/dev/null || jupytext --quiet --to ipynb --output "$nb" "$py"
    python ../scripts/slim_notebooks.py --execute "$nb"
    jupytext --quiet --sync "$nb"
done
