"""Keep one static PNG per figure in executed notebooks (run by scripts/execute_notebooks.sh).

An ipympl figure executed headless is stored three times: a PNG output, the same PNG inside an
HTML fallback, and the canvas model's ``_data_url`` in the notebook's widget state; a widget app
(controls + canvas in a VBox) is stored only as a widget view whose canvas holds no image at all,
so its figure shows nowhere but in a live JupyterLab. This script rewrites every figure output as
one ``image/png``, quantised to a 256-colour palette (about 2-3x smaller), drops the HTML copies
and the widget state, and keeps every other output. The result shows each figure in JupyterLab
before a kernel runs, in nbviewer and on a website, with no widget JavaScript; running a cell
brings the live widget back.

With ``--execute`` it first runs the notebook top to bottom in a fresh kernel (in place, like
``jupyter nbconvert --execute --inplace``) and then, in the same kernel, renders every open figure:
each figure is stored as it was at the end of the run, which is what its live widget showed (a
widget app's figure too, after the later cells that updated it). Without ``--execute`` an app's
figure has no image to keep and the app is stored as its text.

    python scripts/slim_notebooks.py [--execute] notebooks/04_reverse_sampling.ipynb [...]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
import time
from pathlib import Path

import nbformat
from PIL import Image

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
DATA_URL_PREFIX = "data:image/png;base64,"
# Run in the kernel after the last cell: every open pyplot figure with an ipympl canvas, by model id.
RENDER_FIGURES = """\
def _render_figures():
    import base64, io, json
    import matplotlib.pyplot as plt
    images = {}
    for num in plt.get_fignums():
        fig = plt.figure(num)
        model_id = getattr(fig.canvas, "model_id", None)
        if model_id:
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=%r)
            images[model_id] = base64.b64encode(buffer.getvalue()).decode()
    print(json.dumps(images))
_render_figures()
"""


def execute(nb, cwd: Path, dpi: float | str = "figure", timeout: int = 300) -> dict[str, bytes]:
    """Run ``nb`` in place in a fresh kernel; returns the final PNG of each ipympl canvas by model id."""
    from nbclient import NotebookClient

    nb.cells.append(nbformat.v4.new_code_cell(RENDER_FIGURES % dpi))
    try:
        NotebookClient(nb, timeout=timeout, resources={"metadata": {"path": str(cwd)}}).execute()
    finally:
        probe = nb.cells.pop()
    text = "".join(o.get("text", "") for o in probe.outputs if o.get("name") == "stdout")
    return {model_id: base64.b64decode(png) for model_id, png in json.loads(text).items()}


def compress_png(png: bytes) -> bytes:
    """``png`` quantised to a 256-colour palette (no dithering), on white where it was transparent.

    Not resized: resampling a plot blurs its edges into many colours and makes the PNG larger; a
    smaller image is rendered at a lower ``--dpi`` instead.
    """
    image = Image.open(io.BytesIO(png))
    image.load()
    if image.mode != "RGB":
        background = Image.new("RGB", image.size, "white")
        rgba = image.convert("RGBA")
        background.paste(rgba, mask=rgba.getchannel("A"))
        image = background
    image = image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def canvases(model_id: str, state: dict) -> list[tuple[str, dict]]:
    """(model id, state) of the ipympl canvases under widget ``model_id`` (itself included), in display order."""
    model = state.get(model_id)
    if model is None:
        return []
    if model.get("model_name") == "MPLCanvasModel":
        return [(model_id, model["state"])]
    found: list[tuple[str, dict]] = []

    def walk(value):
        if isinstance(value, str) and value.startswith("IPY_MODEL_"):
            found.extend(canvases(value.removeprefix("IPY_MODEL_"), state))
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for key, value in model.get("state", {}).items():
        if key not in ("layout", "style"):
            walk(value)
    return found


def png_output(png: bytes, text: str) -> nbformat.NotebookNode:
    data = {"image/png": base64.b64encode(compress_png(png)).decode(), "text/plain": text}
    return nbformat.v4.new_output("display_data", data=data)


def slim_output(output, state: dict, rendered: dict[str, bytes]) -> list:
    """``output`` with its figures as single PNGs (a widget view with no figure becomes its text).

    A canvas's image is its ``rendered`` PNG (by model id) when there is one, else its ``_data_url``.
    """
    data = output.get("data", {})
    text = data.get("text/plain", "")
    if WIDGET_VIEW in data:
        figures = []
        for model_id, canvas in canvases(data[WIDGET_VIEW]["model_id"], state):
            url = canvas.get("_data_url") or ""
            if model_id in rendered:
                figures.append(rendered[model_id])
            elif url.startswith(DATA_URL_PREFIX):
                figures.append(base64.b64decode(url.removeprefix(DATA_URL_PREFIX)))
        if not figures and "image/png" in data:
            figures.append(base64.b64decode(data["image/png"]))
        if figures:
            return [png_output(png, text) for png in figures]
        return [nbformat.v4.new_output("display_data", data={"text/plain": text})] if text else []
    if "image/png" in data:
        data["image/png"] = base64.b64encode(compress_png(base64.b64decode(data["image/png"]))).decode()
        if "<img src='data:image/png" in "".join(data.get("text/html", "")):
            del data["text/html"]  # ipympl's HTML fallback: the same image again
    return [output]


def slim(path: Path, run: bool = False, dpi: float | str = "figure") -> tuple[int, int]:
    """Rewrite ``path`` in place (executed first when ``run``); returns its size in bytes before and after."""
    before = path.stat().st_size
    nb = nbformat.read(path, as_version=4)
    rendered = execute(nb, path.resolve().parent, dpi) if run else {}
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [new for output in cell.outputs for new in slim_output(output, state, rendered)]
    nb.metadata.pop("widgets", None)  # no output refers to a widget any more
    nbformat.write(nb, path)
    return before, path.stat().st_size


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--execute", action="store_true", help="run each notebook in a fresh kernel first")
    parser.add_argument("--dpi", type=float, default=None,
                        help="with --execute: render the figures at this dpi (default: each figure's own)")
    args = parser.parse_args(argv)
    if args.dpi is not None and not 20 <= args.dpi <= 600:
        parser.error(f"--dpi must be in [20, 600], got {args.dpi}")
    for path in args.notebooks:
        start = time.perf_counter()
        before, after = slim(path, args.execute, "figure" if args.dpi is None else args.dpi)
        ran = f"executed in {time.perf_counter() - start:.1f} s, " if args.execute else ""
        print(f"{path.name}: {ran}{before / 1e3:.0f} kB -> {after / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
