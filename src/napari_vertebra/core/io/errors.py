"""The one error type readers and writers raise for bad input."""

from __future__ import annotations

import os
import stat
from pathlib import Path

#: Refuse arrays larger than this many voxels before reading them (about 6 GB as float32).
MAX_VOXELS = 1_500_000_000


class SpineIOError(ValueError):
    """A file or folder could not be read or written; the message names it and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def check_readable_file(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path if it is a non-empty regular file, else raise SpineIOError.

    Refusing FIFOs and devices up front keeps a reader from blocking forever on them.
    """
    p = Path(path)
    try:
        info = p.stat()
    except FileNotFoundError:
        raise SpineIOError(p, "no such file or folder") from None
    except OSError as err:
        raise SpineIOError(p, f"cannot be accessed ({err.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise SpineIOError(p, "is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise SpineIOError(p, "is not a regular file (a device, pipe or socket)")
    if info.st_size == 0:
        raise SpineIOError(p, "is empty (0 bytes)")
    if not os.access(p, os.R_OK):
        raise SpineIOError(p, "is not readable (permission denied)")
    return p


def check_voxel_count(path: str | os.PathLike, shape: tuple[int, ...]) -> None:
    """Raise SpineIOError if the header declares an implausibly large or empty array."""
    if any(int(n) <= 0 for n in shape):
        raise SpineIOError(path, f"declares an empty array of shape {tuple(shape)}")
    count = 1
    for n in shape:
        count *= int(n)
    if count > MAX_VOXELS:
        raise SpineIOError(
            path,
            f"declares {count:,} voxels (shape {tuple(shape)}), more than "
            f"the {MAX_VOXELS:,} this reader accepts; the header is probably corrupt",
        )
