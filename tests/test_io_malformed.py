"""At least 20 malformed inputs per reader: each gives a clear SpineIOError naming the path, or the
napari reader declines it; nothing crashes with another exception type and nothing hangs."""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from napari_vertebra import SpineIOError, read_image
from napari_vertebra._napari.reader import get_reader
from tests.dicom_factory import ct_series, lenient, radiograph_dataset, write

RNG = np.random.default_rng(1)


def _wb(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _wt(path: Path, content: str) -> Path:
    path.write_text(content)
    return path


def _valid_nifti(path: Path, data=None, affine=None) -> Path:
    data = RNG.normal(size=(16, 16, 12)).astype(np.float32) if data is None else data
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)
    return path


def _truncate(path: Path, keep: float) -> Path:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    return path


def _huge_dims_nifti(path: Path) -> Path:
    img = nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4))
    img.header.set_data_shape((4000, 4000, 4000))
    raw = img.header.binaryblock + b"\x00" * 4 + b"\x00" * 128
    path.write_bytes(raw)
    return path


def _nan_affine(path: Path) -> Path:
    affine = np.eye(4)
    affine[0, 0] = np.nan
    img = nib.Nifti1Image(np.ones((16, 16, 8), np.int16) * 5, None)
    img.header.set_sform(affine, code=1)
    img.header.set_qform(None, code=0)
    nib.save(img, path)
    return path


def _zero_spacing(path: Path) -> Path:
    affine = np.eye(4)
    affine[2, 2] = 0
    img = nib.Nifti1Image(RNG.normal(size=(16, 16, 8)).astype(np.float32), None)
    img.header.set_sform(affine, code=1)
    img.header.set_qform(None, code=0)
    nib.save(img, path)
    return path


NIFTI_CASES = {
    "empty-gz": lambda d: _wb(d / "a.nii.gz", b""),
    "empty-nii": lambda d: _wb(d / "a.nii", b""),
    "random-nii": lambda d: _wb(d / "a.nii", RNG.bytes(2000)),
    "random-gz": lambda d: _wb(d / "a.nii.gz", RNG.bytes(2000)),
    "gzipped-text": lambda d: _wb(d / "a.nii.gz", gzip.compress(b"hello" * 100)),
    "text-as-nii": lambda d: _wt(d / "a.nii", "not an image\n" * 50),
    "truncated-gz": lambda d: _truncate(_valid_nifti(d / "a.nii.gz"), 0.5),
    "truncated-nii": lambda d: _truncate(_valid_nifti(d / "a.nii"), 0.6),
    "header-only": lambda d: _truncate(_valid_nifti(d / "a.nii"), 348 / 13000),
    "all-nan": lambda d: _valid_nifti(d / "a.nii.gz", np.full((16, 16, 8), np.nan, np.float32)),
    "all-inf": lambda d: _valid_nifti(d / "a.nii.gz", np.full((16, 16, 8), np.inf, np.float32)),
    "nan-affine": lambda d: _nan_affine(d / "a.nii.gz"),
    "zero-spacing": lambda d: _zero_spacing(d / "a.nii.gz"),
    "one-dimensional": lambda d: _valid_nifti(d / "a.nii.gz", np.arange(100, dtype=np.int16)),
    "time-series-4d": lambda d: _valid_nifti(d / "a.nii.gz", np.zeros((16, 16, 8, 3), np.int16)),
    "five-d": lambda d: _valid_nifti(d / "a.nii.gz", np.zeros((16, 16, 8, 1, 2), np.int16)),
    "complex": lambda d: _valid_nifti(d / "a.nii.gz", np.zeros((16, 16, 8), np.complex64)),
    "single-line": lambda d: _valid_nifti(d / "a.nii.gz", np.zeros((1, 1, 100), np.int16)),
    "tiny": lambda d: _valid_nifti(d / "a.nii.gz", np.zeros((3, 3, 3), np.int16)),
    "huge-declared": lambda d: _huge_dims_nifti(d / "a.nii"),
    "folder-named-nii": lambda d: (d / "dir.nii.gz").mkdir() or d / "dir.nii.gz",
    "fifo": lambda d: os.mkfifo(d / "pipe.nii") or d / "pipe.nii",
    "broken-symlink": lambda d: (
        (d / "link.nii.gz").symlink_to(d / "missing.nii.gz") or d / "link.nii.gz"
    ),
}


def _dx(d: Path, name="a.dcm", **kw) -> Path:
    pixels = kw.pop("pixels", np.full((32, 32), 100, np.uint16))
    return write(radiograph_dataset(pixels, PixelSpacing=[0.1, 0.1], **kw), d / name)


def _dx_edit(d: Path, edit, name="a.dcm", **kw) -> Path:
    ds = radiograph_dataset(np.full((32, 32), 100, np.uint16), PixelSpacing=[0.1, 0.1], **kw)
    edit(ds)
    return write(ds, d / name)


def _no_pixels(d: Path) -> Path:
    return _dx_edit(d, lambda ds: delattr(ds, "PixelData"))


def _compressed_garbage(d: Path, uid) -> Path:
    from pydicom.encaps import encapsulate

    def edit(ds):
        ds.file_meta.TransferSyntaxUID = uid
        ds.PixelData = encapsulate([RNG.bytes(300)])
        ds["PixelData"].VR = "OB"

    return _dx_edit(d, edit)


def _patched(path: Path, old: bytes, new: bytes) -> Path:
    """Replace bytes of a written file: puts text where DICOM wants numbers (pydicom won't)."""
    raw = path.read_bytes()
    assert raw.count(old) == 1 and len(old) == len(new)
    path.write_bytes(raw.replace(old, new))
    return path


def _patched_slice(folder: Path, index: int, old: bytes, new: bytes) -> Path:
    _patched(sorted(folder.iterdir())[index], old, new)
    return folder


def _set(**values):
    def edit(ds):
        with lenient():
            for key, value in values.items():
                setattr(ds, key, value)

    return edit


DICOM_CASES = {
    "empty": lambda d: _wb(d / "a.dcm", b""),
    "random": lambda d: _wb(d / "a.dcm", RNG.bytes(4000)),
    "preamble-then-garbage": lambda d: _wb(d / "a.dcm", b"\0" * 128 + b"DICM" + RNG.bytes(500)),
    "text-as-dcm": lambda d: _wt(d / "a.dcm", "hello\n" * 100),
    "truncated-header": lambda d: _truncate(_dx(d), 0.05),
    "truncated-pixels": lambda d: _truncate(_dx(d), 0.8),
    "no-pixel-data": _no_pixels,
    "rows-mismatch": lambda d: _dx_edit(d, _set(Rows=64)),
    "zero-rows": lambda d: _dx_edit(d, _set(Rows=0)),
    "huge-declared": lambda d: _dx_edit(d, _set(Rows=65535, Columns=65535)),
    "modality-mr": lambda d: _dx_edit(d, _set(Modality="MR")),
    "zero-spacing": lambda d: _dx_edit(d, _set(PixelSpacing=[0, 0])),
    "text-spacing": lambda d: _patched(
        _dx_edit(d, _set(PixelSpacing=[9.87654, 9.87654])), b"9.87654\\9.87654", b"abcdefg\\hijklmn"
    ),
    "three-spacing": lambda d: _dx_edit(d, _set(PixelSpacing=[0.1, 0.1, 0.1])),
    "zero-slope": lambda d: _dx_edit(d, _set(RescaleSlope=0)),
    "text-slope": lambda d: _patched(
        _dx_edit(d, _set(RescaleSlope=7.654321)), b"7.654321", b"abcdefgh"
    ),
    "two-samples": lambda d: _dx_edit(d, _set(SamplesPerPixel=2)),
    "bad-bits": lambda d: _dx_edit(d, _set(BitsAllocated=7)),
    "jpeg-ls-no-decoder": lambda d: _compressed_garbage(d, "1.2.840.10008.1.2.4.80"),
    "jpeg2000-garbage": lambda d: _compressed_garbage(d, "1.2.840.10008.1.2.4.90"),
    "enhanced-ct-frames": lambda d: _dx_edit(d, _set(Modality="CT", NumberOfFrames=3)),
    "png-renamed": lambda d: (
        Image.fromarray(np.zeros((20, 20), np.uint8)).save(d / "x.png")
        or (d / "x.png").rename(d / "a.dcm")
        or d / "a.dcm"
    ),
}


def _series(d: Path, **kw) -> Path:
    ct_series(d / "s", **kw)
    return d / "s"


def _series_edit(d: Path, index: int, edit) -> Path:
    import pydicom

    folder = _series(d)
    path = sorted(folder.iterdir())[index]
    ds = pydicom.dcmread(path)
    edit(ds)
    write(ds, path)
    return folder


def _with_files(d: Path, files: dict[str, bytes]) -> Path:
    folder = d / "f"
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


def _two_series(d: Path) -> Path:
    folder = _series(d, series_uid="1.2.3.9.1")
    for p in ct_series(d / "o", n=3, series_uid="1.2.3.9.2"):
        p.rename(folder / f"b{p.name}")
    return folder


def _mixed_orientation(d: Path) -> Path:
    folder = _series(d, n=3, series_uid="1.2.3.7")
    odd = ct_series(
        d / "o", n=1, positions=[-7.5], orientation=(0, 1, 0, 0, 0, -1), series_uid="1.2.3.7"
    )
    odd[0].rename(folder / "odd.dcm")
    return folder


def _subfolder_only(d: Path) -> Path:
    ct_series(d / "top" / "inner")
    return d / "top"


def _hidden_only(d: Path) -> Path:
    folder = _series(d)
    for p in folder.iterdir():
        p.rename(folder / f".{p.name}")
    return folder


def _fifo_folder(d: Path) -> Path:
    (d / "q").mkdir()
    os.mkfifo(d / "q" / "a.dcm")
    return d / "q"


def _one_truncated_slice(d: Path) -> Path:
    folder = _series(d)
    _truncate(sorted(folder.iterdir())[2], 0.7)
    return folder


FOLDER_CASES = {
    "empty-folder": lambda d: (d / "e").mkdir() or d / "e",
    "unrelated-files": lambda d: _with_files(d, {"notes.txt": b"hi", "img.bin": RNG.bytes(300)}),
    "garbage-dcm-only": lambda d: _with_files(d, {"a.dcm": RNG.bytes(500), "b.dcm": b""}),
    "gap": lambda d: _series(d, positions=[0.0, -2.5, -5.0, -10.0, -12.5]),
    "duplicates": lambda d: _series(d, positions=[0.0, -2.5, -2.5, -5.0]),
    "same-position": lambda d: _series(d, positions=[0.0, 0.0]),
    "mixed-orientation": _mixed_orientation,
    "mixed-size": lambda d: _series_edit(d, 1, _set(Rows=8, PixelData=b"\0" * 8 * 16 * 2)),
    "missing-spacing": lambda d: _series_edit(d, 0, lambda ds: delattr(ds, "PixelSpacing")),
    "differing-spacing": lambda d: _series_edit(d, 2, _set(PixelSpacing=[0.5, 0.5])),
    "mr-series": lambda d: _series_edit(d, 0, _set(Modality="MR")) if False else _all_mr(d),
    "truncated-slice": _one_truncated_slice,
    "no-pixels-slice": lambda d: _series_edit(d, 3, lambda ds: delattr(ds, "PixelData")),
    "two-series": _two_series,
    "subfolder-only": _subfolder_only,
    "hidden-only": _hidden_only,
    "fifo-in-folder": _fifo_folder,
    "bad-orientation": lambda d: _series_edit(
        d, 0, _set(ImageOrientationPatient=[1, 0, 0, 1, 0, 0])
    ),
    "text-position": lambda d: _patched_slice(
        _series_edit(d, 1, _set(ImagePositionPatient=[1.234567, 2.345678, 3.456789])),
        1,
        b"1.234567\\2.345678",
        b"abcdefgh\\ijklmnop",
    ),
    "zero-slope-slice": lambda d: _series_edit(d, 2, _set(RescaleSlope=0)),
    "rows-mismatch-slice": lambda d: _series_edit(d, 2, _set(Columns=20)),
}


def _all_mr(d: Path) -> Path:
    import pydicom

    folder = _series(d)
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        ds.Modality = "MR"
        ds.save_as(path, enforce_file_format=True)
    return folder


def _png_header(path: Path, width: int, height: int) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )
    return path


def _save(array, path: Path, **kw) -> Path:
    Image.fromarray(array).save(path, **kw)
    return path


def _tiff(path: Path, data, **kw) -> Path:
    import tifffile

    tifffile.imwrite(path, data, **kw)
    return path


def _multipage_tiff(path: Path) -> Path:
    import tifffile

    with tifffile.TiffWriter(path) as tif:
        tif.write(np.zeros((20, 20), np.uint8))
        tif.write(np.zeros((30, 10), np.uint16))
    return path


def _apng(path: Path) -> Path:
    frames = [Image.fromarray(np.full((20, 20), v, np.uint8)) for v in (0, 128)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    return path


RASTER_CASES = {
    "empty-png": lambda d: _wb(d / "a.png", b""),
    "random-png": lambda d: _wb(d / "a.png", RNG.bytes(1000)),
    "truncated-png": lambda d: _truncate(
        _save(RNG.integers(0, 255, (64, 64), dtype=np.uint8), d / "a.png"), 0.5
    ),
    "text-jpg": lambda d: _wt(d / "a.jpg", "no"),
    "truncated-jpg": lambda d: _truncate(
        _save(RNG.integers(0, 255, (64, 64), dtype=np.uint8), d / "a.jpg"), 0.3
    ),
    "empty-jpeg": lambda d: _wb(d / "a.jpeg", b""),
    "empty-tif": lambda d: _wb(d / "a.tif", b""),
    "garbage-tif": lambda d: _wb(d / "a.tif", b"II*\0" + RNG.bytes(300)),
    "multi-page-tif": lambda d: _multipage_tiff(d / "a.tif"),
    "stack-tif": lambda d: _tiff(d / "a.tiff", np.zeros((5, 20, 20), np.uint16)),
    "tiny-png": lambda d: _save(np.zeros((2, 2), np.uint8), d / "a.png"),
    "one-row-png": lambda d: _save(np.zeros((1, 100), np.uint8), d / "a.png"),
    "nan-tif": lambda d: _tiff(d / "a.tif", np.full((20, 20), np.nan, np.float32)),
    "png-as-tif": lambda d: (
        _save(np.zeros((20, 20), np.uint8), d / "x.png").rename(d / "a.tif") or d / "a.tif"
    ),
    "animated-png": lambda d: _apng(d / "a.png"),
    "bomb-png": lambda d: _png_header(d / "a.png", 100_000, 100_000),
    "truncated-16bit-png": lambda d: _truncate(
        _save(RNG.integers(0, 60000, (64, 64), dtype=np.uint16), d / "a.png"), 0.4
    ),
    "complex-tif": lambda d: _tiff(d / "a.tif", np.zeros((20, 20), np.complex64)),
    "folder-named-png": lambda d: (d / "dir.png").mkdir() or d / "dir.png",
    "fifo-png": lambda d: os.mkfifo(d / "p.png") or d / "p.png",
    "zero-size-header-png": lambda d: _png_header(d / "a.png", 0, 10),
}

ALL_CASES = (
    [(f"nifti/{k}", f) for k, f in NIFTI_CASES.items()]
    + [(f"dicom/{k}", f) for k, f in DICOM_CASES.items()]
    + [(f"folder/{k}", f) for k, f in FOLDER_CASES.items()]
    + [(f"raster/{k}", f) for k, f in RASTER_CASES.items()]
)


def test_at_least_twenty_cases_per_reader():
    for group in (NIFTI_CASES, DICOM_CASES, FOLDER_CASES, RASTER_CASES):
        assert len(group) >= 20


@pytest.mark.parametrize("make", [f for _, f in ALL_CASES], ids=[k for k, _ in ALL_CASES])
def test_malformed_input_gives_a_clear_error(tmp_path, make, no_hang):
    path = make(tmp_path)
    with pytest.raises(SpineIOError) as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith(str(path)) or str(path) in message
    problem = message.split(": ", 1)[1]
    assert len(problem) > 10 and "Traceback" not in problem


@pytest.mark.parametrize("make", [f for _, f in ALL_CASES], ids=[k for k, _ in ALL_CASES])
def test_napari_reader_declines_or_reports(tmp_path, make, no_hang, caplog):
    path = make(tmp_path)
    reader = get_reader(str(path))
    if reader is None:
        return
    layers = reader(str(path))
    # Either nothing to add (the null-layer sentinel, with an error logged naming the file) …
    if layers == [(None,)]:
        assert any(str(path) in r.getMessage() for r in caplog.records)
    else:  # … or, for a folder with several series, each series as its own layer.
        assert all(data is not None for data, *_ in layers)
