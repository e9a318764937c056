"""Per-vertebra tables as CSV, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .atomic import atomic_path
from .errors import SpineIOError


def write_table(table: pd.DataFrame, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``table`` to CSV (no index column; empty cells where values are missing).

    The file is written under a temporary name and renamed, so an interrupted write never leaves
    a half-written CSV; an existing file is kept unless ``overwrite`` is True.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise SpineIOError(path, "already exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, na_rep="")
    return path


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV written by :func:`write_table`."""
    try:
        return pd.read_csv(path, keep_default_na=True)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise SpineIOError(path, f"is not a readable CSV table ({err})") from None
