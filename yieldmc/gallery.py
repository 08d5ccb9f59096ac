"""A picture of every defect kind: rows are kinds, columns are example dies.

``yieldmc gallery --out docs/img/defect_gallery.png`` calls :func:`plot_gallery`; the
file's suffix chooses the format (``.png``, ``.svg``, ``.pdf``, ...: :func:`image_formats`).
The figure is drawn on a matplotlib canvas directly (no pyplot, no global state), so it
works headless and inside worker processes.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from yieldmc import defect_kinds
from yieldmc.defects import STUCK_OFF, STUCK_ON, sample
from yieldmc.errors import ConfigError
from yieldmc.rng import die_generator

#: matplotlib formats that are no image file a viewer opens, or need LaTeX.
_NOT_IMAGES = frozenset({"pgf", "raw", "rgba"})
# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
HEALTHY_COLOUR, OFF_COLOUR, ON_COLOUR = "#e6e6e6", "#0072b2", "#d55e00"


def image_formats() -> dict[str, str]:
    """``{suffix without the dot: description}`` of every format :func:`plot_gallery` writes.

    The image formats of matplotlib's canvases (png, svg, pdf, eps, ps, jpg, tif, webp,
    ...), less pgf (needs a LaTeX installation) and raw/rgba (headerless pixel dumps).
    """
    return {k: v for k, v in FigureCanvasBase.get_supported_filetypes().items()
            if k not in _NOT_IMAGES}


def _format_of(path: Path) -> str:
    """The image format ``path``'s suffix names; ConfigError when there is none we write."""
    fmt = path.suffix[1:].lower()
    formats = image_formats()
    if fmt not in formats:
        given = f"suffix {path.suffix!r}" if path.suffix else "no suffix"
        raise ConfigError(f"gallery file {str(path)!r} has {given}, which names no image format; "
                          f"use one of: {', '.join('.' + f for f in sorted(formats))}")
    return fmt


def plot_gallery(out_path: str | PathLike, shape: tuple[int, int] = (32, 32),
                 n_examples: int = 4, seed: int = 0, dpi: int = 110) -> Path:
    """Write an image grid of example masks for every defect kind.

    Example ``e`` of each kind is the draw of die ``e`` of root seed ``seed``
    (default ranges, ``severity=None``, per-cell ON/OFF with ``on_fraction=0.5``).

    Parameters
    ----------
    out_path : str or path-like
        Image file to write, in the format its suffix names (``.png``, ``.svg``, ``.pdf``,
        ...; :func:`image_formats`); its folder is created if needed.
    shape : (int, int)
        Array shape (rows, columns) of every example.
    n_examples : int
        Examples (columns) per kind, >= 1.
    seed : int
        Root seed of the example dies.
    dpi : int
        Resolution of raster formats (PNG, JPEG, ...), dots per inch.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ConfigError
        ``n_examples`` below 1, or a suffix that names no format (the message lists them),
        both before anything is drawn or written.
    """
    out = Path(out_path)
    fmt = _format_of(out)
    if int(n_examples) != n_examples or n_examples < 1:
        raise ConfigError(f"n_examples must be an integer >= 1, got {n_examples!r}")
    kinds = defect_kinds.REGISTRY.kinds  # every registered kind, then mixed and none
    rows, cols = len(kinds), int(n_examples)
    aspect = shape[0] / shape[1]  # height / width of one panel
    ph = 1.45 * min(max(aspect, 1.0) ** 0.5, 2.5)  # panel size in inches
    pw = min(max(ph / aspect, 1.35), 4.5)  # wide enough for its title
    left, top, hgap, vgap = 1.75, 0.95, 0.25, 0.42
    width = left + cols * pw + (cols - 1) * hgap + 0.15
    height = top + rows * ph + (rows - 1) * vgap + 0.1
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(rows, cols, left=left / width, right=1 - 0.15 / width,
                            top=1 - top / height, bottom=0.1 / height,
                            wspace=hgap / pw, hspace=vgap / ph)
    cmap = ListedColormap([HEALTHY_COLOUR, OFF_COLOUR, ON_COLOUR])
    norm = BoundaryNorm([-0.5, 0.5, 1.5, 2.5], cmap.N)
    for r, kind in enumerate(kinds):
        for e in range(cols):
            m, p = sample(kind, shape, die_generator(seed, e))
            ax = fig.add_subplot(grid[r, e])
            ax.imshow(m, cmap=cmap, norm=norm, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color("#888888")
            label = f"{100 * np.mean(m > 0):.0f}% faulty"
            if kind == defect_kinds.MIXED:
                label = f"{p['kind']}, {label}"
            ax.set_title(label, fontsize=7.5, pad=2.5)
            if e == 0:
                ax.set_ylabel(kind, rotation=0, ha="right", va="center", fontsize=10,
                              labelpad=6)
    handles = [Patch(facecolor=HEALTHY_COLOUR, edgecolor="#888888", label="healthy"),
               Patch(facecolor=OFF_COLOUR, label=f"stuck OFF ({STUCK_OFF}, g_off)"),
               Patch(facecolor=ON_COLOUR, label=f"stuck ON ({STUCK_ON}, g_on)")]
    fig.legend(handles=handles, loc="upper center", ncol=3, frameon=False, fontsize=9,
               bbox_to_anchor=(0.5, 1 - 0.36 / height))
    fig.suptitle(f"yieldmc defect kinds on a {shape[0]}x{shape[1]} array "
                 f"(default ranges, die seeds [{seed}, 0..{cols - 1}])",
                 fontsize=11, y=1 - 0.08 / height, va="top")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format=fmt, facecolor="white")  # savefig picks the canvas of the format
    return out
