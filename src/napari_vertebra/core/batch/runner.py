"""Running the analysis over a folder of studies on Dask, resumable and safe to kill.

The driver (this module) finds the studies, skips those already finished, hands the others to
Dask workers (:func:`~napari_vertebra.core.batch.study.process_study`) and keeps the folder-wide
files up to date as results arrive: ``measurements.csv`` (every study's rows with a ``study``
column), ``failures.csv`` (study, error, path), ``manifest.json`` (versions, models and their
card hashes, settings, per-study timings) and ``pipeline.yaml`` (the settings, replayable with
``--pipeline``). Each is written to a temporary name and renamed, and each is rebuilt from the
finished study folders, so a batch killed at any moment and run again ends with the same files
as one that was never interrupted.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..io import SpineIOError
from ..io.atomic import atomic_path
from ..measure import COLUMNS
from ..pipeline_file import PipelineSettings, load_pipeline, save_pipeline
from .discover import Study, find_studies
from .study import PARTIAL_FOLDER, is_finished, process_study

PIPELINE_FILE = "pipeline.yaml"
MEASUREMENTS_FILE = "measurements.csv"
FAILURES_FILE = "failures.csv"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".batch.lock"
#: Seconds between rewrites of the folder-wide files while studies finish.
REFRESH_SECONDS = 5.0

#: ``progress(done, total, failed)``: studies done (finished or failed) of ``total`` this run.
BatchProgress = Callable[[int, int, int], None]


@dataclass
class BatchSummary:
    """What a batch did: counts, the studies that failed, and where the files are."""

    output_dir: Path
    studies: int
    skipped: int
    finished: int
    failed: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def measurements_path(self) -> Path:
        return self.output_dir / MEASUREMENTS_FILE

    @property
    def failures_path(self) -> Path:
        return self.output_dir / FAILURES_FILE


def run_batch(
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    settings: PipelineSettings | None = None,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    report: bool = True,
    dicom: bool = True,
    exclude: tuple[str, ...] = (),
    progress: BatchProgress | None = None,
) -> BatchSummary:
    """Analyse every study under ``input_dir`` into ``output_dir``.

    Parameters
    ----------
    input_dir
        Folder searched recursively for studies (:func:`find_studies`); never written to.
    output_dir
        Folder of the results: ``<study>/`` per study as ``analyze`` writes it (plus
        ``report.html``, ``overview.png`` and, for DICOM input, ``seg.dcm`` and ``sr.dcm``),
        and the folder-wide files. Running again skips finished studies and retries failed
        ones; it is refused when the folder's ``pipeline.yaml`` holds other settings.
    settings
        The analysis settings (default: :class:`PipelineSettings` defaults).
    workers
        Local Dask worker processes (one thread each); ``0`` runs every study in this process,
        one after the other (for debugging). Ignored with ``scheduler``.
    scheduler
        Address of a running ``dask.distributed`` scheduler (``tcp://host:8786``): the studies
        run on its workers, which must see ``input_dir`` and ``output_dir`` at the same paths.
    report, dicom
        Write the per-study HTML/PNG report; write DICOM SEG and SR for DICOM input.
    exclude
        Glob patterns of files that are not studies (:func:`find_studies`).
    progress
        Called with (done, total, failed) as studies finish.
    """
    start = time.perf_counter()
    settings = settings or PipelineSettings()
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise SpineIOError(input_dir, "is not a folder (batch takes a folder of studies)")
    if output_dir.resolve() == input_dir.resolve():
        raise SpineIOError(output_dir, "is the input folder; write the results elsewhere")
    settings.check_models(source="pipeline settings")
    if not settings.model_card_sha256:
        settings = settings.with_model_hashes()
    output_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(output_dir):
        _adopt_settings(output_dir, settings)
        shutil.rmtree(output_dir / PARTIAL_FOLDER, ignore_errors=True)
        studies = find_studies(input_dir, exclude=exclude, skip=output_dir)
        pending = [s for s in studies if not is_finished(output_dir, s.name)]
        state = _State(output_dir, studies, settings, input_dir)
        state.load_timings()
        summary = BatchSummary(output_dir, len(studies), len(studies) - len(pending), 0)
        state.refresh(force=True)
        if progress is not None:
            progress(0, len(pending), 0)
        records = _run(pending, output_dir, settings, workers, scheduler, report, dicom)
        for done, record in enumerate(records, start=1):
            state.add(record)
            if record["status"] == "ok":
                summary.finished += 1
            else:
                summary.failed.append(record)
            state.refresh()
            if progress is not None:
                progress(done, len(pending), len(summary.failed))
        summary.seconds = time.perf_counter() - start
        _remove_if_empty(output_dir / PARTIAL_FOLDER)
        state.refresh(force=True, seconds=summary.seconds, workers=workers, scheduler=scheduler)
    return summary


def _run(pending, output_dir, settings, workers, scheduler, report, dicom):
    """Yield each study's record as it finishes (in this process, or from Dask workers)."""
    document = settings.to_document()
    arguments = (str(output_dir), document, report, dicom)
    if not pending:
        return
    if scheduler is None and workers == 0:
        for study in pending:
            yield process_study(study, *arguments)
        return
    from dask.distributed import Client, LocalCluster, as_completed

    if scheduler is not None:
        cluster = None
        client = Client(scheduler)
        threads = None
    else:
        if workers < 0:
            raise ValueError(f"--workers must be 0 or more, got {workers}")
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        client = Client(cluster)
        threads = max(1, (os.cpu_count() or 1) // workers)
    try:
        futures = {
            client.submit(
                process_study, study, *arguments, threads=threads, pure=False, key=_key(study)
            ): study
            for study in pending
        }
        for future in as_completed(futures):
            study = futures[future]
            try:
                yield future.result()
            except Exception as err:  # the worker itself died (memory, a signal)
                yield {
                    "study": study.name,
                    "path": str(study.path),
                    "status": "failed",
                    "error": f"the worker running it failed: {type(err).__name__}: {err}",
                }
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # absent, or a study of another process is still being written there


def _key(study: Study) -> str:
    return f"napari-vertebra-study-{study.name}-{os.getpid()}-{time.monotonic_ns()}"


class _State:
    """The folder-wide files, rebuilt from the finished study folders."""

    def __init__(self, output_dir: Path, studies: list[Study], settings, input_dir: Path):
        self.output_dir = output_dir
        self.studies = studies
        self.settings = settings
        self.input_dir = input_dir
        self.timings: dict[str, float] = {}
        self.failures: dict[str, dict[str, Any]] = {}
        self.tables: dict[str, pd.DataFrame] = {}
        self.last = 0.0

    def load_timings(self) -> None:
        previous = self.output_dir / MANIFEST_FILE
        try:
            manifest = json.loads(previous.read_text())
            self.timings = {k: float(v) for k, v in manifest.get("study_seconds", {}).items()}
        except (OSError, ValueError, AttributeError):
            self.timings = {}

    def add(self, record: dict[str, Any]) -> None:
        name = record["study"]
        self.timings[name] = record.get("seconds", float("nan"))
        if record["status"] == "ok":
            self.failures.pop(name, None)
        else:
            self.failures[name] = record

    def refresh(self, force: bool = False, **run: Any) -> None:
        now = time.monotonic()
        if not force and now - self.last < REFRESH_SECONDS:
            return
        self.last = now
        finished = [s for s in self.studies if is_finished(self.output_dir, s.name)]
        frames = []
        for study in finished:
            if study.name not in self.tables:
                self.tables[study.name] = _study_table(self.output_dir / study.name, study.name)
            frames.append(self.tables[study.name])
        columns = ["study", *COLUMNS]
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
        with atomic_path(self.output_dir / MEASUREMENTS_FILE) as temporary:
            table.to_csv(temporary, index=False)
        failures = pd.DataFrame(
            [
                {"study": r["study"], "error": r["error"], "path": r["path"]}
                for r in sorted(self.failures.values(), key=lambda r: r["study"])
            ],
            columns=["study", "error", "path"],
        )
        with atomic_path(self.output_dir / FAILURES_FILE) as temporary:
            failures.to_csv(temporary, index=False)
        self._write_manifest(finished, run)

    def _write_manifest(self, finished: list[Study], run: dict[str, Any]) -> None:
        from ..pipeline import _versions

        manifest = {
            "input_dir": str(self.input_dir.resolve()),
            "output_dir": str(self.output_dir.resolve()),
            "complete": len(finished) == len(self.studies),
            "studies": len(self.studies),
            "finished": len(finished),
            "failed": sorted(self.failures),
            "pipeline": self.settings.to_document(),
            "models": self.settings.resolved_models(),
            "fracture_classifiers": self.settings.resolved_classifiers(),
            "versions": _versions(),
            "study_seconds": dict(sorted(self.timings.items())),
            "study_sources": {s.name: str(s.path) for s in self.studies},
            "last_run": dict(run),
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        with atomic_path(self.output_dir / MANIFEST_FILE) as temporary:
            temporary.write_text(json.dumps(manifest, indent=1, default=str) + "\n")


def _study_table(folder: Path, name: str) -> pd.DataFrame:
    """A finished study's measurements as written (text kept as is), with ``study`` first."""
    table = pd.read_csv(folder / MEASUREMENTS_FILE, dtype=str, keep_default_na=False)
    table.insert(0, "study", name)
    return table


def _adopt_settings(output_dir: Path, settings: PipelineSettings) -> None:
    """Write the folder's pipeline file, or check that it holds the same settings."""
    path = output_dir / PIPELINE_FILE
    if not path.exists():
        save_pipeline(settings, path)
        return
    recorded = load_pipeline(path)
    if recorded.to_document() != settings.to_document():
        raise SpineIOError(
            output_dir,
            f"holds results of other settings ({PIPELINE_FILE} differs: "
            f"{_differences(recorded, settings)}); continue them with --pipeline "
            f"{path}, or write to a new folder",
        )


def _differences(a: PipelineSettings, b: PipelineSettings) -> str:
    first, second = a.to_document(), b.to_document()
    changed = []
    for section in first:
        if isinstance(first[section], dict):
            for key in first[section]:
                if first[section].get(key) != second.get(section, {}).get(key):
                    changed.append(f"{section}.{key}")
        elif first[section] != second.get(section):
            changed.append(section)
    return ", ".join(changed) or "format"


class _exclusive:
    """An exclusive lock on the output folder (a second batch writing there is refused)."""

    def __init__(self, output_dir: Path):
        self.path = output_dir / LOCK_FILE
        self.handle = None

    def __enter__(self):
        self.handle = open(self.path, "a+")  # noqa: SIM115 - held for the whole batch
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; one batch per folder is on the user
            return self
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.handle.close()
            raise SpineIOError(
                self.path.parent, "is being written by another batch (it holds the lock)"
            ) from None
        return self

    def __exit__(self, *_):
        self.handle.close()
