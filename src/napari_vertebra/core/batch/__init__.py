"""Batch analysis over a folder of studies: discovery, one study per Dask task, folder files."""

from .discover import Study, find_studies
from .runner import BatchSummary, run_batch
from .study import process_study

__all__ = ["BatchSummary", "Study", "find_studies", "process_study", "run_batch"]
