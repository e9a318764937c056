"""Analysing one study of a batch and writing its outputs all at once.

Runs in a Dask worker (or in the batch's own process with ``--workers 0``): everything it takes
and returns is plain data. The outputs are written into a hidden folder beside their place and
renamed onto ``OUTPUT_DIR/<study>/`` only when complete, so a study folder that exists is a
finished study, whenever the batch was stopped.
"""

from __future__ import annotations

import os
import shutil
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from .discover import Study

#: Hidden folder of the output folder where studies are written before they are renamed.
PARTIAL_FOLDER = ".partial"
#: The file whose presence marks a finished study (written last by ``analyze``'s writer).
FINISHED_MARKER = "summary.json"


def is_finished(output_dir: str | os.PathLike, name: str) -> bool:
    """True when ``OUTPUT_DIR/<name>/`` holds a finished study."""
    return (Path(output_dir) / name / FINISHED_MARKER).is_file()


def process_study(
    study: Study,
    output_dir: str,
    pipeline: dict[str, Any],
    report: bool = True,
    dicom: bool = True,
    threads: int | None = None,
) -> dict[str, Any]:
    """Analyse ``study`` with the settings of ``pipeline`` (a pipeline-file document) and write
    its outputs under ``output_dir/<study.name>/``.

    Never raises for a bad study: the returned record has ``status`` ``"ok"`` (with
    ``vertebrae`` and ``seconds``) or ``"failed"`` (with ``error``, one line naming the file and
    the problem, and ``traceback``).
    """
    start = time.perf_counter()
    record: dict[str, Any] = {"study": study.name, "path": str(study.path)}
    if threads:
        _limit_threads(threads)
    try:
        written = _analyse_and_write(study, Path(output_dir), pipeline, report, dicom)
        record.update(status="ok", **written)
    except Exception as err:  # one bad study must never stop the batch
        record.update(
            status="failed",
            error=_one_line(err),
            traceback=traceback.format_exc(limit=8),
        )
    record["seconds"] = round(time.perf_counter() - start, 3)
    return record


def _analyse_and_write(
    study: Study, output_dir: Path, pipeline: dict[str, Any], report: bool, dicom: bool
) -> dict[str, Any]:
    from ..io import read_image
    from ..pipeline import analyze
    from ..pipeline_file import PipelineSettings

    settings = PipelineSettings.from_document(pipeline)
    image = read_image(study.path, **study.read_options())
    result = analyze(image, **settings.analyze_options())
    result.summary["batch"] = {"study": study.name, "source": str(study.path)}
    final = output_dir / study.name
    partial = output_dir / PARTIAL_FOLDER / f"{study.name}-{uuid.uuid4().hex[:8]}"
    partial.mkdir(parents=True)
    try:
        extra: list[str] = []
        if report:
            from ..report import write_report

            extra += [p.name for p in write_report(result, partial).values()]
        if dicom and image.source.get("format") == "DICOM":
            from ..io.dicom_export import write_dicom_exports

            extra += [p.name for p in write_dicom_exports(result, partial).values()]
        # analyze's own files last: summary.json marks the study finished.
        result.write(partial)
        if final.exists():
            # Another run (a killed batch's worker, a second batch) finished it meanwhile.
            shutil.rmtree(partial, ignore_errors=True)
        else:
            os.replace(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return {"vertebrae": int(len(result.table)), "files": sorted(extra)}


def _limit_threads(threads: int) -> None:
    """Share the machine's cores between the worker processes (torch's own pool)."""
    try:
        import torch
    except ImportError:
        return
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().replace("\n", " ") or type(err).__name__
    return text if isinstance(err, ValueError | OSError) else f"{type(err).__name__}: {text}"
