"""Batch: the current Analyze spine settings (or a pipeline file) over a folder of studies."""

from __future__ import annotations

import os
from pathlib import Path

import napari
from magicgui.widgets import CheckBox, ComboBox, FileEdit, SpinBox

from ..settings import load_settings
from ._base import StepWidget
from ._pipeline import settings_from_values

CURRENT = "Analyze spine settings"
FROM_FILE = "pipeline file"


class BatchWidget(StepWidget):
    """Runs :func:`~napari_vertebra.core.batch.run_batch` with a progress bar and a summary.

    The settings are those last used in the Analyze spine widget (its fields are kept between
    uses) or a pipeline file. Results go to ``<output folder>/<study>/`` with the folder-wide
    ``measurements.csv`` and ``failures.csv``; running again continues where a batch stopped.
    """

    settings_name = "batch"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        fields = [
            FileEdit(name="input_dir", label="studies folder", mode="d"),
            FileEdit(name="output_dir", label="results folder", mode="d"),
            ComboBox(name="settings_source", label="settings", choices=[CURRENT, FROM_FILE]),
            FileEdit(
                name="pipeline_file",
                label="pipeline file",
                mode="r",
                filter="Pipeline (*.yaml *.yml *.json)",
            ),
            SpinBox(
                name="workers",
                label="worker processes",
                value=1,
                min=0,
                max=max(1, os.cpu_count() or 1),
                tooltip="Local Dask worker processes; 0 runs in napari's own process",
            ),
            CheckBox(name="report", label="HTML/PNG report per study", value=True),
            CheckBox(name="dicom", label="DICOM SEG + SR for DICOM input", value=True),
        ]
        super().__init__(
            viewer,
            fields,
            "Run batch",
            persist=("settings_source", "pipeline_file", "workers", "report", "dicom"),
        )
        self.summary = None
        self._show_pipeline_field()
        self.settings_source.changed.connect(lambda *_: self._show_pipeline_field())

    def _show_pipeline_field(self) -> None:
        self.pipeline_file.visible = self.settings_source.value == FROM_FILE

    def settings(self):
        """The settings the batch runs with (a pipeline file's, or Analyze spine's)."""
        from ...core.pipeline_file import load_pipeline

        if self.settings_source.value == FROM_FILE:
            path = Path(str(self.pipeline_file.value))
            settings = load_pipeline(path)
            settings.check_models(source=path)
            return settings
        return settings_from_values(load_settings("analyze"))

    def run(self) -> None:
        from ...core.batch import run_batch

        source, target = Path(str(self.input_dir.value)), Path(str(self.output_dir.value))
        if not source.is_dir() or str(self.input_dir.value) in ("", "."):
            self.status.value = "choose the folder of studies"
            return
        if str(self.output_dir.value) in ("", "."):
            self.status.value = "choose a results folder"
            return
        try:
            settings = self.settings()
        except ValueError as err:
            self.status.value = str(err)
            return
        options = {
            "workers": int(self.workers.value),
            "report": bool(self.report.value),
            "dicom": bool(self.dicom.value),
        }

        def work(progress):
            def studies(done: int, total: int, failed: int) -> None:
                progress(f"{done}/{total} studies, {failed} failed", done / max(total, 1))

            return run_batch(source, target, settings, progress=studies, **options)

        self.start(work, self._show, "Batch")

    def _show(self, summary) -> None:
        self.summary = summary
        text = (
            f"{summary.studies} studies: {summary.finished} analysed, {summary.skipped} "
            f"already done, {len(summary.failed)} failed ({summary.seconds:.0f} s); "
            f"table: {summary.measurements_path}"
        )
        if summary.failed:
            text += "\nfailed: " + ", ".join(r["study"] for r in summary.failed[:5])
            if len(summary.failed) > 5:
                text += f" … (see {summary.failures_path.name})"
        self.status.value = text
