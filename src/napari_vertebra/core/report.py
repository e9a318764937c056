"""Per-study report: an overview PNG and an HTML page with the measurement table.

In the spirit of seed 003's proposed PACS output (Fig. 6): the image with each vertebral body
outlined in the colour of its Genant grade and named by its level, the sagittal slice shown
stated so that a reader can find it again, and the per-vertebra table. The page names the
input, the model and its card hash, and the time of the analysis. Written by ``batch`` for
every study and by ``analyze --report``.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .io.atomic import atomic_path
from .measure import SUMMARY_COLUMNS

#: Colours by Genant grade (0 normal … 3 severe); bodies without a grade, and the sacrum. The
#: napari layers use the same colours.
GRADE_COLORS = {
    0: "#2ca02c",
    1: "#ffd92f",
    2: "#ff7f0e",
    3: "#d62728",
    "ungraded": "#1f77b4",
    "sacrum": "#9467bd",
}
GRADE_NAMES = {0: "normal", 1: "mild", 2: "moderate", 3: "severe"}


def grade_color(grade: Any, level: str) -> str:
    """Colour of a body: by its Genant grade, blue when it has none, purple for the sacrum."""
    if level == "S1":
        return GRADE_COLORS["sacrum"]
    if grade is None or pd.isna(grade):
        return GRADE_COLORS["ungraded"]
    return GRADE_COLORS[int(grade)]


def overview_section(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The 2D picture of a study: the radiograph itself, or for CT the sagittal slice through
    the middle of the labelled bodies (canonical axis 2), with the labels projected onto it
    (maximum along axis 2) so that no body is missing from the outline.

    Returns the image section, the label section and the slice index (-1 in 2D).
    """
    if image.ndim == 2:
        return image, labels, -1
    columns = np.nonzero(labels.any(axis=(0, 1)))[0]
    index = int(np.median(columns)) if columns.size else image.shape[2] // 2
    return image[:, :, index], labels.max(axis=2), index


def render_overview(result, path: str | os.PathLike) -> Path:
    """Write the overview PNG of an :class:`~napari_vertebra.core.pipeline.AnalysisResult`."""
    from matplotlib.figure import Figure
    from skimage import measure as skmeasure

    image = result.image
    section, labels, index = overview_section(image.array, result.labels.array)
    spacing = image.spacing[:2]
    height_mm, width_mm = section.shape[0] * spacing[0], section.shape[1] * spacing[1]
    low, high = _display_range(section, image.modality)
    figure_height = 8.0
    figure = Figure(figsize=(figure_height * 1.15 * width_mm / height_mm, figure_height))
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    axes.imshow(
        section,
        cmap="gray",
        vmin=low,
        vmax=high,
        extent=(0, width_mm, height_mm, 0),
        interpolation="bilinear",
    )
    table = result.table
    for _, row in table.iterrows():
        mask = labels == int(row["label"])
        if not mask.any():
            continue
        color = grade_color(row["genant_grade"], row["level"])
        for contour in skmeasure.find_contours(mask.astype(float), 0.5):
            axes.plot(
                (contour[:, 1] + 0.5) * spacing[1],
                (contour[:, 0] + 0.5) * spacing[0],
                color=color,
                linewidth=1.5,
            )
        rows, cols = np.nonzero(mask)
        grade = row["genant_grade"]
        text = row["level"] if pd.isna(grade) or int(grade) == 0 else f"{row['level']} G{grade}"
        # Names go in front of the bodies (canonical column index runs anterior -> posterior),
        # away from the posterior elements.
        axes.text(
            (cols.min() - 4) * spacing[1],
            rows.mean() * spacing[0],
            text,
            color=color,
            fontsize=11,
            fontweight="bold",
            va="center",
            ha="right",
            bbox={"facecolor": "black", "alpha": 0.6, "pad": 1.5, "linewidth": 0},
        )
    where = "" if index < 0 else f"sagittal slice {index} of {image.shape[2]}, "
    axes.text(
        -0.14 * width_mm,
        8,
        f"{where}{spacing[1]:.2f} mm/px",
        color="white",
        fontsize=9,
        va="top",
        bbox={"facecolor": "black", "alpha": 0.5, "pad": 2},
    )
    axes.set_xlim(-0.15 * width_mm, width_mm)
    axes.set_facecolor("black")
    axes.axis("off")
    path = Path(path)
    with atomic_path(path, keep_suffix=True) as temporary:
        figure.savefig(temporary, dpi=100, facecolor="black")
    return path


def _display_range(section: np.ndarray, modality: str) -> tuple[float, float]:
    if modality == "CT":
        return -500.0, 1300.0  # bone window: centre 400 HU, width 1800 HU
    low, high = np.percentile(section, (1, 99))
    return float(low), float(high if high > low else low + 1)


def render_html(result, overview_name: str = "overview.png") -> str:
    """The report page (self-contained but for the overview picture, referenced by name)."""
    summary = result.summary
    table = result.table
    model = summary.get("model") or {}
    source = summary.get("input") or {}
    rows = []
    for _, row in table.iterrows():
        color = grade_color(row["genant_grade"], row["level"])
        cells = "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in SUMMARY_COLUMNS)
        rows.append(f'<tr style="border-left: 8px solid {color}">{cells}</tr>')
    graded = table["genant_grade"].dropna()
    fractured = table.loc[graded[graded >= 1].index, "level"].tolist()
    finding = (
        "Fracture grade ≥ 1 (Genant) at " + ", ".join(fractured)
        if fractured
        else "No vertebra graded as fractured"
    )
    legend = " ".join(
        f'<span style="color:{GRADE_COLORS[g]}">■</span> {g} {GRADE_NAMES[g]}' for g in range(4)
    )
    header = "".join(f"<th>{html.escape(c)}</th>" for c in SUMMARY_COLUMNS)
    details = {
        "input": source.get("path"),
        "modality": source.get("modality"),
        "spacing (mm)": source.get("spacing_mm"),
        "model": f"{model.get('name')} (card SHA-256 {model.get('card_sha256') or 'none'})",
        "device": summary.get("device"),
        "time (s)": (summary.get("timings_s") or {}).get("total_s"),
    }
    info = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in details.items()
    )
    title = html.escape(Path(str(source.get("path") or "study")).name)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>napari-vertebra: {title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border-bottom: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th {{ background: #f2f2f2; }}
img {{ max-height: 80vh; float: left; margin: 0 2em 1em 0; }}
.finding {{ font-size: 1.2em; font-weight: bold; }}
.note {{ color: #555; font-size: 0.9em; }}
</style></head><body>
<h1>Vertebral morphometry: {title}</h1>
<img src="{html.escape(overview_name)}" alt="overview: bodies coloured by Genant grade">
<p class="finding">{html.escape(finding)}</p>
<p>{legend} <span style="color:{GRADE_COLORS["ungraded"]}">■</span> not graded
<span style="color:{GRADE_COLORS["sacrum"]}">■</span> sacrum</p>
<table>{info}</table>
<table><tr>{header}</tr>{"".join(rows)}</table>
<p class="note">Heights in mm; VCR in percent of the neighbours' anterior heights (seed 000);
Genant grade from the largest height loss against the neighbours (seed 002). Automatic
measurements for research: a reader checks every value (napari-vertebra, docs/measurements.md).
</p>
</body></html>
"""


def _cell(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, float | np.floating):
        return f"{value:.1f}"
    return str(value)


def write_report(result, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``overview.png`` and ``report.html`` for one analysed study into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    overview = render_overview(result, out_dir / "overview.png")
    page = out_dir / "report.html"
    with atomic_path(page) as temporary:
        temporary.write_text(render_html(result, overview.name), encoding="utf-8")
    return {"report": page, "overview": overview}
