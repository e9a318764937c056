"""Writing a file under a temporary name and renaming it into place."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike, keep_suffix: bool = False) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to, renamed onto ``path`` when the block ends.

    The temporary file is ``.NAME.partial`` (``.NAME.partial.nii.gz`` with ``keep_suffix``, for
    writers that choose the format by suffix). It is removed when the block raises, so an
    interrupted write never leaves a half-written file under the real name.
    """
    path = Path(path)
    suffix = "".join(path.suffixes) if keep_suffix else ""
    temporary = path.with_name(f".{path.name}.partial{suffix}")
    try:
        yield temporary
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)
