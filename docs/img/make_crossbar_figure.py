"""Draw docs/img/crossbar.svg: the circuit convention of DESIGN.md section 4 on a 3 x 3 array.

Run from the repository root: ``python docs/img/make_crossbar_figure.py``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

M_ROWS, N_COLS = 3, 3
DX, DY = 3.0, 2.6  # spacing of the cells
CX, CY = 0.6, 0.9  # offset of a column node from its row node
ROW_C, COL_C, CELL_C = "#1f5fa8", "#b8401a", "#333333"
LW = 1.3


def resistor(ax, p0, p1, color, label=None, at=(0.3, 0.7), zigs=6, amp=0.12,
             offset=(0.0, 0.3), ha="center"):
    """A zig-zag resistor from p0 to p1 (zig-zag between fractions ``at``), with a label
    placed at ``offset`` from the middle of the zig-zag."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    n = np.array([-d[1], d[0]]) / np.hypot(*d)
    a, b = p0 + at[0] * d, p0 + at[1] * d
    k = np.arange(2 * zigs + 1)
    off = np.where(k % 2 == 1, amp, 0.0) * np.where(k % 4 == 1, 1.0, -1.0)
    pts = a + (k / (2 * zigs))[:, None] * (b - a) + off[:, None] * n
    xy = np.vstack([p0, pts, p1])
    ax.plot(xy[:, 0], xy[:, 1], color=color, lw=LW, solid_joinstyle="miter")
    if label:
        mid = (a + b) / 2 + np.asarray(offset)
        ax.text(*mid, label, color=color, ha=ha, va="center", fontsize=8)


def line(ax, xs, ys, color):
    ax.plot(xs, ys, color=color, lw=LW)


def row_node(i, j):
    return np.array([j * DX, -i * DY])


def col_node(i, j):
    return row_node(i, j) + np.array([CX, -CY])


def source(ax, i):
    """Ideal source v[i] (referenced to ground); returns its + terminal."""
    y = -i * DY
    c = np.array([-4.2, y - 0.6])
    ax.add_patch(plt.Circle(c, 0.3, fill=False, color=ROW_C, lw=LW))
    ax.text(c[0], c[1] + 0.12, "+", ha="center", va="center", fontsize=8, color=ROW_C)
    ax.text(c[0], c[1] - 0.14, "\u2212", ha="center", va="center", fontsize=8, color=ROW_C)
    ax.text(c[0] - 0.42, c[1], f"v[{i}]", ha="right", va="center", fontsize=9, color=ROW_C)
    line(ax, [c[0], c[0]], [c[1] + 0.3, y], ROW_C)
    line(ax, [c[0], c[0]], [c[1] - 0.3, c[1] - 0.6], ROW_C)
    for w, dy in ((0.2, 0.6), (0.12, 0.68), (0.05, 0.76)):
        line(ax, [c[0] - w, c[0] + w], [c[1] - dy, c[1] - dy], ROW_C)
    return np.array([c[0], y])


#: Text stays text (small, searchable SVG); a fixed salt gives stable element ids.
SVG_STYLE = {"svg.fonttype": "none", "svg.hashsalt": "yieldmc"}


def draw(path: Path) -> None:
    with plt.rc_context(SVG_STYLE):
        _draw(path)


def _draw(path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7.4, 7.4))
    x_end = row_node(0, N_COLS - 1)[0] + CX + 0.6
    for i in range(M_ROWS):
        y = -i * DY
        plus = source(ax, i)
        resistor(ax, plus, row_node(i, 0), ROW_C, "r_driver + r_row", at=(0.25, 0.75))
        for j in range(N_COLS - 1):
            resistor(ax, row_node(i, j), row_node(i, j + 1), ROW_C, "r_row", at=(0.35, 0.75),
                     offset=(0.0, 0.3))
        line(ax, [row_node(i, N_COLS - 1)[0], x_end], [y, y], ROW_C)
        ax.text(x_end + 0.1, y, "open", ha="left", va="center", fontsize=8, color=ROW_C,
                style="italic")
    for j in range(N_COLS):
        top = col_node(0, j)
        line(ax, [top[0], top[0]], [top[1], 0.7], COL_C)  # crosses row 0 without a joint
        ax.text(top[0], 0.8, "open", ha="center", va="bottom", fontsize=8, color=COL_C,
                style="italic")
        for i in range(M_ROWS - 1):
            resistor(ax, col_node(i, j), col_node(i + 1, j), COL_C, "r_col", at=(0.12, 0.5),
                     offset=(0.25, 0.0), ha="left")
        last = col_node(M_ROWS - 1, j)
        amp_in = last + np.array([0.0, -1.9])
        resistor(ax, last, amp_in, COL_C, "r_col + r_sense", at=(0.25, 0.75),
                 offset=(0.25, 0.0), ha="left")
        tri = np.array([[amp_in[0] - 0.35, amp_in[1]], [amp_in[0] + 0.35, amp_in[1]],
                        [amp_in[0], amp_in[1] - 0.55]])
        ax.add_patch(plt.Polygon(tri, closed=True, fill=False, color=COL_C, lw=LW))
        ax.text(amp_in[0], amp_in[1] - 0.25, "TIA", ha="center", va="center", fontsize=5,
                color=COL_C)
        ax.text(amp_in[0], amp_in[1] - 0.7, f"I[{j}]", ha="center", va="top", fontsize=9,
                color=COL_C)
        ax.text(amp_in[0] - 0.4, amp_in[1] + 0.08, "0 V", ha="right", va="bottom", fontsize=7,
                color=COL_C)
    for i in range(M_ROWS):
        for j in range(N_COLS):
            a, b = row_node(i, j), col_node(i, j)
            resistor(ax, a, b, CELL_C, f"G[{i},{j}]", at=(0.2, 0.8), zigs=3, amp=0.09,
                     offset=(-0.12, -0.3), ha="right")
            ax.plot(*a, "o", ms=3.5, color=ROW_C, zorder=5)
            ax.plot(*b, "o", ms=3.5, color=COL_C, zorder=5)
    ax.annotate("row node (0, 0)", row_node(0, 0), xytext=(-1.7, 1.5), fontsize=8,
                color=ROW_C, arrowprops={"arrowstyle": "-", "color": ROW_C, "lw": 0.6})
    ax.annotate("column node (0, 0)", col_node(0, 0), xytext=(1.2, 1.5), fontsize=8,
                color=COL_C, arrowprops={"arrowstyle": "-", "color": COL_C, "lw": 0.6})
    bottom = -(M_ROWS - 1) * DY - CY - 3.2
    ax.text(-5.4, bottom,
            "Row i (input) is driven at its j = 0 end and is open beyond j = N-1: N segments.\n"
            "Column j (output) is open before i = 0 and ends in a virtual ground: M segments.\n"
            "A wire crossing without a dot is not a joint. With every resistance 0: I = v @ G.",
            fontsize=8, va="top")
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_xlim(-5.5, x_end + 1.0)
    ax.set_ylim(bottom - 0.9, 2.0)
    fig.tight_layout(pad=0.2)
    fig.savefig(path, metadata={"Date": None})  # no timestamp: the file is reproducible
    plt.close(fig)


if __name__ == "__main__":
    out = Path(__file__).resolve().parent / "crossbar.svg"
    draw(out)
    print(f"written {out}")
