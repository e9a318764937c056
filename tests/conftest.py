"""Shared fixtures: paths of the real data beside the project, a hang guard, small phantoms."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

# torchvision loads triton, which bundles its own LLVM. Loaded after Mesa's software OpenGL
# (llvmpipe, what Xvfb gives the napari tests) has loaded its LLVM, the import segfaults; loaded
# first, both work. So the deep-learning stack is imported before any viewer exists.
import torchvision  # noqa: F401

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LUMBAR = SHARED_DATA / "ct-lumbar-totalseg"
TPTBOX = SHARED_DATA / "ct-crop-tptbox"
VERSE = SHARED_DATA / "verse-mask-sample"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real scans in ../shared/data; required in CI, skipped elsewhere when absent."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_DATA} is missing: CI must run beside shared/")
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def no_hang():
    """Fail a test that blocks for more than 30 s instead of hanging the suite."""

    def _alarm(signum, frame):
        raise TimeoutError("reader hung for more than 30 s")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)
