#!/usr/bin/env bash
# Build the course website (Jupyter Book 1.x) from the committed, executed chapters: the build
# never executes a notebook, and the pages load nothing from the internet.
# Usage: scripts/build_website.sh [DIR]   (default: website; the site lands in DIR/_build/html,
# open DIR/_build/html/index.html). The repository's address for the Binder buttons is set in
# website/_config.yml (repository: url).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$(realpath -m "${1:-$root/website}")"
rm -rf "$dir/_build"
python "$root/website/prepare.py" "$dir/_build/src"
jupyter-book build "$dir/_build/src" --config "$root/website/_config.yml" --toc "$dir/_build/src/_toc.yml" \
    --path-output "$dir" --warningiserror --keep-going --quiet
rm -rf "$dir/_build/src" "$dir/_build/.doctrees" "$dir/_build/jupyter_execute"
find "$dir/_build/html" -name "*.map" -delete  # the theme's source maps: for debugging the theme only
echo "website: $dir/_build/html/index.html ($(du -sh "$dir/_build/html" | cut -f1))"
