"""Long work off the GUI thread: a napari progress bar, cancel, errors as notifications.

Core functions take a ``progress(stage, fraction)`` callback; :func:`run_task` runs one in a
napari thread worker, shows the fractions in a napari progress bar, and stops it at the next
callback when :meth:`Task.cancel` is called. Results come back to ``on_done`` on the GUI
thread, where layers may be added. Set ``NAPARI_VERTEBRA_SYNC=1`` to run in the calling thread
instead (tests, debugging): errors are then raised, not only shown.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

#: Environment variable: run widget work synchronously in the GUI thread.
SYNC_VARIABLE = "NAPARI_VERTEBRA_SYNC"


class Cancelled(Exception):
    """Raised inside a task's progress callback after :meth:`Task.cancel`."""


def is_sync() -> bool:
    return os.environ.get(SYNC_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


class Task:
    """One piece of work with its progress bar; see :func:`run_task`."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.cancelled = False
        self.worker = None
        self._bar = None
        self._done = 0

    def cancel(self) -> None:
        """Stop at the next progress report."""
        self.cancelled = True

    def report(self, stage: str, fraction: float) -> None:
        """Progress callback for core functions (any thread)."""
        if self.cancelled:
            raise Cancelled(f"{self.description} was cancelled")
        self._show(stage, fraction)

    def _show(self, stage: str, fraction: float) -> None:
        if self._bar is None:
            return
        if is_sync():
            self._update(stage, fraction)
        else:
            from superqt.utils import ensure_main_thread

            ensure_main_thread(self._update)(stage, fraction)

    def _update(self, stage: str, fraction: float) -> None:
        if self._bar is None:
            return
        value = int(round(100 * min(max(fraction, 0.0), 1.0)))
        self._bar.set_description(f"{self.description}: {stage}")
        # Redrawing the description may process queued events, the task's end among them.
        if self._bar is not None and value > self._done:
            self._bar.update(value - self._done)
            self._done = value

    def _open_bar(self) -> None:
        from napari.utils import progress

        self._bar = progress(total=100, desc=self.description)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def run_task(
    function: Callable[[Callable[[str, float], None]], Any],
    on_done: Callable[[Any], None],
    description: str,
    on_finish: Callable[[], None] | None = None,
) -> Task:
    """Run ``function(progress)`` off the GUI thread and pass its result to ``on_done``.

    Errors become napari error notifications with a plain message; a cancelled task shows an
    information notification. ``on_finish`` runs afterwards in every case (enable buttons).
    """
    from napari.utils.notifications import show_error, show_info

    task = Task(description)
    task._open_bar()

    def finish() -> None:
        task._close_bar()
        if on_finish is not None:
            on_finish()

    def failed(error: Exception) -> None:
        if isinstance(error, Cancelled):
            show_info(str(error))
        else:
            show_error(f"{description} failed: {error}")

    if is_sync():
        try:
            on_done(function(task.report))
        except Cancelled as error:
            failed(error)
        finally:
            finish()
        return task

    from napari.qt.threading import create_worker

    # Errors are shown by `failed`; napari would otherwise re-raise them in the GUI thread.
    worker = create_worker(function, task.report, _start_thread=False, _ignore_errors=True)
    worker.returned.connect(on_done)
    worker.errored.connect(failed)
    worker.finished.connect(finish)
    task.worker = worker
    worker.start()
    return task
