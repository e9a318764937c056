"""Build small DICOM files for tests with pydicom (no patient data)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
from pydicom import config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    generate_uid,
)


def radiograph_dataset(
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    modality: str = "DX",
    **attributes,
) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientName = "Test^Phantom"
    ds.PatientID = "PHANTOM-1"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if pixels.dtype.itemsize == 1 else 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    for key, value in attributes.items():
        setattr(ds, key, value)
    return ds


@contextmanager
def lenient():
    """Let tests put invalid values (text in a DS, …) into datasets, as broken files hold them."""
    saved = (config.settings.reading_validation_mode, config.settings.writing_validation_mode)
    config.settings.reading_validation_mode = config.IGNORE
    config.settings.writing_validation_mode = config.IGNORE
    try:
        yield
    finally:
        config.settings.reading_validation_mode, config.settings.writing_validation_mode = saved


def write(ds: Dataset, path: Path) -> Path:
    with lenient():
        ds.save_as(path, enforce_file_format=True)
    return path


def ct_series(
    folder: Path,
    n: int = 6,
    step: float = 2.5,
    size: int = 16,
    positions: list[float] | None = None,
    orientation=(1, 0, 0, 0, 1, 0),
    series_uid: str | None = None,
    start_value: int = 0,
) -> list[Path]:
    """A tiny axial CT series, stored values = slice index * 10 + start_value, HU = value - 1024."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = series_uid or generate_uid()
    positions = positions if positions is not None else [-step * k for k in range(n)]
    paths = []
    for k, z in enumerate(positions):
        pixels = np.full((size, size), start_value + 10 * k, np.uint16)
        pixels[0, 0] = 1000 + k
        ds = radiograph_dataset(
            pixels,
            modality="CT",
            bits_stored=12,
            PixelSpacing=[0.7, 0.8],
            ImageOrientationPatient=list(orientation),
            ImagePositionPatient=[-10.0, -20.0, z],
            RescaleSlope=1,
            RescaleIntercept=-1024,
            SliceThickness=step,
            InstanceNumber=k + 1,
        )
        ds.SOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.SeriesInstanceUID = uid
        paths.append(write(ds, folder / f"slice{k:03d}.dcm"))
    return paths


#: Study-level attributes highdicom needs in source images (empty where DICOM allows it).
_STUDY_ATTRIBUTES = {
    "SeriesNumber": 1,
    "StudyID": "1",
    "AccessionNumber": "",
    "ReferringPhysicianName": "",
    "PatientBirthDate": "",
    "PatientSex": "O",
    "StudyDate": "20260101",
    "StudyTime": "120000",
    "Manufacturer": "napari-vertebra tests",
}


def phantom_ct_series(image, folder: Path) -> list[Path]:
    """A CT phantom (canonical I, P, L; HU) as an axial DICOM series, one file per slice.

    Canonical axis 0 runs head to feet, so slice k lies at z = -k * spacing; rows run
    posterior (+Y), columns to the patient's left (+X): ImageOrientationPatient 1\\0\\0\\0\\1\\0.
    """
    folder.mkdir(parents=True, exist_ok=True)
    series_uid, study_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    step, row_mm, column_mm = image.spacing
    paths = []
    for k in range(image.shape[0]):
        pixels = np.clip(np.round(image.array[k] + 1024), 0, 4095).astype(np.uint16)
        ds = radiograph_dataset(
            pixels,
            modality="CT",
            bits_stored=12,
            PixelSpacing=[row_mm, column_mm],
            ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
            ImagePositionPatient=[0.0, 0.0, -step * k],
            RescaleSlope=1,
            RescaleIntercept=-1024,
            SliceThickness=step,
            InstanceNumber=k + 1,
            FrameOfReferenceUID=frame_uid,
            **_STUDY_ATTRIBUTES,
        )
        ds.SOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.SeriesInstanceUID = series_uid
        ds.StudyInstanceUID = study_uid
        paths.append(write(ds, folder / f"slice{k:03d}.dcm"))
    return paths


def phantom_radiograph(image, path: Path) -> Path:
    """A radiograph phantom (canonical I, P) as a DX file: rows run to the feet, columns
    posterior (PatientOrientation P\\F)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = image.array.astype(float)
    low, high = float(array.min()), float(array.max())
    pixels = np.round((array - low) / max(high - low, 1e-6) * 4095).astype(np.uint16)
    ds = radiograph_dataset(
        pixels,
        PixelSpacing=list(image.spacing),
        PatientOrientation=["P", "F"],
        InstanceNumber=1,
        **_STUDY_ATTRIBUTES,
    )
    return write(ds, path)
