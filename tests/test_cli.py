"""The napari-vertebra command line: info, view without a display, errors as exit codes."""

import json

from napari_vertebra import sample_path
from napari_vertebra.cli import main


def test_info_prints_geometry(capsys):
    assert main(["info", str(sample_path("lumbar-ct"))]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["modality"] == "CT" and info["axis_codes"] == ["I", "P", "L"]
    assert info["spacing_mm"] == [3.0, 3.0, 3.0] and info["shape"] == [112, 101, 122]


def test_errors_become_exit_code_one_with_the_path(capsys, tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"nope")
    assert main(["info", str(bad)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "not a readable NIfTI" in err


def test_view_without_a_display_explains_instead_of_crashing(capsys, monkeypatch):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert main(["view", "--sample", "lumbar-ct"]) == 2
    assert "no display" in capsys.readouterr().err
