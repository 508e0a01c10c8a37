"""Lay out the website's book source from the committed chapters (run by scripts/build_website.sh).

    python website/prepare.py SRC

writes into SRC: ``notebooks/NN_name.ipynb`` (a copy of each executed chapter, never executed;
a widget that only a live kernel can show becomes a note pointing to the launch button),
``_toc.yml`` (every ``notebooks/NN_*.ipynb`` in order, then the references), ``references.md``
(the chapters' reference lists, merged), the landing page with the README, and MathJax 2 from
the jupyter-server-mathjax package in ``static/mathjax`` so that no page loads from the internet.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import jupyter_server_mathjax
import nbformat

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = re.compile(r"^\d\d_\w+\.ipynb$")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# The text form of a widget box or of a figure canvas with no image (what a live kernel would draw).
WIDGET_TEXT = re.compile(r"^[A-Z]\w*\((children|toolbar)=")
LIVE_NOTE = ("<p class='live-widget'><em>Interactive widget: it runs with a live kernel (the rocket "
             "button above opens this chapter on Binder).</em></p>")
# MathJax 2 (TeX input, HTML-CSS output with the STIX-Web fonts): all the site needs of the package.
MATHJAX_PARTS = ["MathJax.js", "config", "extensions/*.js", "extensions/TeX", "extensions/MathML", "jax/input/TeX",
                 "jax/element", "jax/output/HTML-CSS", "fonts/HTML-CSS/STIX-Web/woff", "localization/en"]


def chapters() -> list[Path]:
    return sorted(p for p in (ROOT / "notebooks").glob("*.ipynb") if CHAPTERS.match(p.name))


def static_output(output):
    """``output`` as a page can show it without a kernel: a widget needing one becomes a note."""
    data = output.get("data", {})
    text = "".join(data.get("text/plain", ""))
    live = WIDGET_VIEW in data and not {"image/png", "text/html"} & set(data)
    if live or (set(data) == {"text/plain"} and WIDGET_TEXT.match(text)):
        return nbformat.v4.new_output("display_data", data={"text/html": LIVE_NOTE, "text/plain": text})
    return output


def copy_chapter(path: Path, dest: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [static_output(o) for o in cell.outputs]
    nb.metadata.pop("widgets", None)  # widget state: the site shows no live widget
    nbformat.write(nb, dest / path.name)
    return nb


def reference_items(nb) -> list[str]:
    """The bullet items of the chapter's "References" section (continuation lines joined)."""
    items: list[str] = []
    for cell in nb.cells:
        lines = cell.source.splitlines() if cell.cell_type == "markdown" else []
        heading = next((i for i, line in enumerate(lines) if re.match(r"^#+\s*References\s*$", line)), None)
        for line in lines[heading + 1:] if heading is not None else []:
            if re.match(r"^[*-] ", line):
                items.append(line[2:].strip())
            elif line.startswith(" ") and items:
                items[-1] += " " + line.strip()
            elif line.startswith("#"):
                break
    return items


def references_page(cited: dict[str, list[str]]) -> str:
    """One list of every reference (deduplicated by arXiv id or text) with the chapters citing it."""
    merged: dict[str, tuple[str, list[str]]] = {}
    for chapter, items in cited.items():
        for item in items:
            arxiv = re.search(r"arXiv:\s*(\d{4}\.\d{4,5})", item)
            key = arxiv.group(1) if arxiv else re.sub(r"\W+", " ", item.lower())
            merged.setdefault(key, (item, []))[1].append(chapter)
    lines = ["# References", "", "Every work cited by a chapter, with the chapters that cite it.", ""]
    for item, where in sorted(merged.values(), key=lambda entry: entry[0].lower()):
        linked = re.sub(r"arXiv:\s*(\d{4}\.\d{4,5})", r"[arXiv:\1](https://arxiv.org/abs/\1)", item)
        chapters_citing = ", ".join(f"[{c[:2]}](notebooks/{c}.ipynb)" for c in where)
        lines.append(f"- {linked} (chapter {chapters_citing})")
    return "\n".join(lines) + "\n"


def copy_mathjax(dest: Path):
    source = Path(jupyter_server_mathjax.__file__).parent / "static"
    for path in (p for part in MATHJAX_PARTS for p in source.glob(part)):
        target = dest / path.relative_to(source)
        if path.is_dir():
            shutil.copytree(path, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)


def main(src: Path):
    (src / "notebooks").mkdir(parents=True)
    cited = {path.stem: reference_items(copy_chapter(path, src / "notebooks")) for path in chapters()}
    (src / "references.md").write_text(references_page(cited))
    toc = ["format: jb-book", "root: index", "chapters:"]
    toc += [f"- file: notebooks/{name}" for name in cited] + ["- file: references"]
    (src / "_toc.yml").write_text("\n".join(toc) + "\n")
    for name in ("index.md", "favicon.svg"):
        shutil.copy(ROOT / "website" / name, src / name)
    shutil.copy(ROOT / "README.md", src / "README.md")
    copy_mathjax(src / "static" / "mathjax")


if __name__ == "__main__":
    if len(sys.argv) != 2 or Path(sys.argv[1]).exists():
        sys.exit("usage: python website/prepare.py SRC  (SRC: a folder that does not exist yet)")
    main(Path(sys.argv[1]))
