"""The core never imports napari, Qt, magicgui or torch; importing the package stays light."""

import subprocess
import sys

BLOCKED = (
    "napari",
    "qtpy",
    "PyQt6",
    "PyQt5",
    "PySide6",
    "magicgui",
    "torch",
    "segmentation_models_pytorch",
    "vispy",
)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_core_works_with_gui_and_torch_blocked():
    code = (
        "import sys\n"
        f"for name in {BLOCKED!r}: sys.modules[name] = None\n"
        "import napari_vertebra\n"
        "from napari_vertebra.core import geometry, image, labels, io, phantom\n"
        "from napari_vertebra import cli, samples\n"
        "p = napari_vertebra.make_phantom('xr', 0, spacing=0.8)\n"
        "img, lab = samples.lumbar_ct()\n"
        "print(p.image.shape, img.shape)\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr


def test_import_does_not_load_heavy_modules():
    code = f"import sys, napari_vertebra\nprint([m for m in {BLOCKED!r} if m in sys.modules])\n"
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
