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


# Blocked by an import hook that raises ImportError, as if the packages were not installed
# (a None entry in sys.modules would confuse scipy, which looks for torch there).
BLOCKER = (
    "import sys, importlib.abc\n"
    "class Block(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    f"        if name.split('.')[0] in {BLOCKED!r}:\n"
    "            raise ImportError(f'{name} is blocked')\n"
    "sys.meta_path.insert(0, Block())\n"
)


def test_core_works_with_gui_and_torch_blocked():
    code = BLOCKER + (
        "import napari_vertebra\n"
        "from napari_vertebra.core import geometry, image, labels, io, phantom\n"
        "from napari_vertebra import cli, samples\n"
        "p = napari_vertebra.make_phantom('xr', 0, spacing=0.8)\n"
        "img, lab = samples.lumbar_ct()\n"
        "print(p.image.shape, img.shape)\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr


def test_ct_analysis_and_measurement_need_no_torch():
    # The CT baseline is what makes CT analysis work without weights: no torch either.
    code = BLOCKER + (
        "import napari_vertebra as nv\n"
        "p = nv.make_phantom('ct', 3, levels=['L3', 'L4', 'L5'], spacing=1.5)\n"
        "print(nv.measure(p.labels).table['level'].tolist())\n"
        "print(len(nv.analyze(p.image).table))\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert "L3" in result.stdout


def test_import_does_not_load_heavy_modules():
    code = f"import sys, napari_vertebra\nprint([m for m in {BLOCKED!r} if m in sys.modules])\n"
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
