"""DICOM exports of an analysis of DICOM input: a Segmentation (SEG) and a TID 1500 report (SR).

Both are built with highdicom and reference the source series:

- ``seg.dcm``: one segment per vertebral body (and the sacrum), named by its level and coded
  with SNOMED CT (``L1 vertebra`` …; property category ``Anatomical Structure``), on the source
  images' own frames (the label map is taken back from the canonical orientation to the stored
  one);
- ``sr.dcm``: a Comprehensive 3D SR measurement report (TID 1500) with one measurement group per
  body, referencing its segment and its level (finding site), holding the anterior, middle and
  posterior heights (mm), VCR (%), the wedge angle (deg), and the Genant grade and fracture type
  as coded evaluations.

Heights, VCR, grade and type have no code of their own in SNOMED CT, LOINC or DICOM's lexicon;
they are coded in the private scheme ``99NAPVERT`` (DICOM's ``99`` prefix for local schemes),
listed in :data:`CODES` and in docs/batch.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .atomic import atomic_path
from .errors import SpineIOError

SCHEME = "99NAPVERT"
#: Local codes (value, meaning) of the measurements and evaluations in the SR.
CODES = {
    "anterior_height_mm": ("NV001", "Anterior vertebral body height"),
    "middle_height_mm": ("NV002", "Middle vertebral body height"),
    "posterior_height_mm": ("NV003", "Posterior vertebral body height"),
    "vcr_percent": ("NV004", "Vertebral compression ratio"),
    "wedge_angle_deg": ("NV005", "Vertebral body wedge angle"),
    "genant_grade": ("NV010", "Genant semiquantitative fracture grade"),
    "fracture_type": ("NV011", "Genant fracture type"),
}
GRADE_CODES = {
    0: ("NV020", "Genant grade 0 (normal)"),
    1: ("NV021", "Genant grade 1 (mild)"),
    2: ("NV022", "Genant grade 2 (moderate)"),
    3: ("NV023", "Genant grade 3 (severe)"),
}
TYPE_CODES = {
    "none": ("NV030", "No fracture deformity"),
    "wedge": ("NV031", "Wedge deformity"),
    "biconcave": ("NV032", "Biconcave deformity"),
    "crush": ("NV033", "Crush deformity"),
}
_UNITS = {"mm": ("mm", "millimeter"), "%": ("%", "percent"), "deg": ("deg", "degree")}
_UNIT_OF = {
    "anterior_height_mm": "mm",
    "middle_height_mm": "mm",
    "posterior_height_mm": "mm",
    "vcr_percent": "%",
    "wedge_angle_deg": "deg",
}


def _code(value: str, meaning: str, scheme: str = SCHEME):
    from pydicom.sr.coding import Code

    return Code(value, scheme, meaning)


def level_code(level: str):
    """SNOMED CT code of a vertebra by level name (``L1 vertebra`` …; the sacrum for S1)."""
    from pydicom.sr.codedict import codes

    if level == "S1":
        return codes.SCT.Sacrum
    return getattr(codes.SCT, f"{level}Vertebra", codes.SCT.Vertebra)


def source_datasets(image) -> list[Any]:
    """The source DICOM headers of ``image`` in the order of its stored array's first axis."""
    from .dicom_file import read_dataset

    path = Path(image.source["path"])
    if path.is_file():
        return [read_dataset(path, stop_before_pixels=True)]
    wanted = list(image.source.get("sop_instance_uids") or [])
    found = {}
    for file in sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")):
        try:
            ds = read_dataset(file, stop_before_pixels=True)
        except SpineIOError:
            continue
        uid = str(getattr(ds, "SOPInstanceUID", ""))
        if uid in wanted:
            found[uid] = ds
    missing = [uid for uid in wanted if uid not in found]
    if missing:
        raise SpineIOError(path, f"no longer holds {len(missing)} of the series' source images")
    return [found[uid] for uid in wanted]


def _stored_labels(result) -> np.ndarray:
    """The level map in the source's stored array order: (frames, rows, columns)."""
    image = result.image
    labels = np.asarray(result.labels.array)
    if image.to_canonical is not None:
        labels = image.to_canonical.to_source(labels)
    if labels.ndim == 2:
        labels = labels[None]
    return np.ascontiguousarray(labels)


def _vertebra_rows(result) -> pd.DataFrame:
    table = result.table
    present = set(np.unique(result.labels.array).tolist())
    return table[table["label"].astype(int).isin(present)].reset_index(drop=True)


def build_segmentation(result, sources: list[Any]):
    """A highdicom Segmentation: one segment per vertebra of ``result``, on ``sources``."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from ... import __version__

    rows = _vertebra_rows(result)
    if rows.empty:
        raise SpineIOError(result.image.source.get("path", "input"), "has no vertebra to export")
    stored = _stored_labels(result)
    if stored.shape[0] != len(sources):
        raise SpineIOError(
            result.image.source.get("path", "input"),
            f"has {len(sources)} source images for {stored.shape[0]} label frames",
        )
    segment_map = np.zeros(stored.shape, np.uint16)
    descriptions = []
    algorithm = hd.AlgorithmIdentificationSequence(
        name="napari-vertebra",
        version=__version__,
        family=codes.cid7162.ArtificialIntelligence,
        source=(result.summary.get("model") or {}).get("name"),
    )
    for number, (_, row) in enumerate(rows.iterrows(), start=1):
        segment_map[stored == int(row["label"])] = number
        level = str(row["level"])
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=f"{level} vertebral body" if level != "S1" else "sacrum",
                segmented_property_category=codes.SCT.AnatomicalStructure,
                segmented_property_type=level_code(level),
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
                tracking_uid=hd.UID(),
                tracking_id=f"{level} vertebral body",
            )
        )
    pixels = segment_map if len(sources) > 1 else segment_map[0]
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=901,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="napari-vertebra",
        manufacturer_model_name="napari-vertebra",
        software_versions=__version__,
        device_serial_number="none",
        series_description="Vertebral bodies (napari-vertebra)",
    )


def build_report(result, sources: list[Any], segmentation):
    """A TID 1500 Comprehensive 3D SR: per vertebra, its heights, VCR, wedge angle, grade and
    type, referencing its segment in ``segmentation``."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from ... import __version__

    rows = _vertebra_rows(result)
    planar = result.image.ndim == 2
    frames = _frames_by_segment(segmentation)
    groups = []
    for number, (_, row) in enumerate(rows.iterrows(), start=1):
        level = str(row["level"])
        if level == "S1":
            continue  # listed as a segment (the level anchor), not measured
        measurements = []
        for column, unit in _UNIT_OF.items():
            value = row.get(column)
            if value is None or pd.isna(value):
                continue
            measurements.append(
                hd.sr.Measurement(
                    name=_code(*CODES[column]),
                    value=float(value),
                    unit=_code(*_UNITS[unit], scheme="UCUM"),
                )
            )
        evaluations = []
        if not pd.isna(row["genant_grade"]):
            evaluations.append(
                hd.sr.QualitativeEvaluation(
                    name=_code(*CODES["genant_grade"]),
                    value=_code(*GRADE_CODES[int(row["genant_grade"])]),
                )
            )
        if str(row.get("fracture_type") or "") in TYPE_CODES:
            evaluations.append(
                hd.sr.QualitativeEvaluation(
                    name=_code(*CODES["fracture_type"]),
                    value=_code(*TYPE_CODES[str(row["fracture_type"])]),
                )
            )
        if planar:
            group_type = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
            referenced = hd.sr.ReferencedSegmentationFrame(
                sop_class_uid=segmentation.SOPClassUID,
                sop_instance_uid=segmentation.SOPInstanceUID,
                frame_number=frames[number],
                segment_number=number,
                source_image=hd.sr.SourceImageForSegmentation.from_source_image(sources[0]),
            )
        else:
            group_type = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
            referenced = hd.sr.ReferencedSegment(
                sop_class_uid=segmentation.SOPClassUID,
                sop_instance_uid=segmentation.SOPInstanceUID,
                segment_number=number,
                source_series=hd.sr.SourceSeriesForSegmentation(sources[0].SeriesInstanceUID),
            )
        groups.append(
            group_type(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=hd.UID(), identifier=f"{level} vertebral body"
                ),
                referenced_segment=referenced,
                finding_type=codes.SCT.Vertebra,
                finding_sites=[hd.sr.FindingSite(level_code(level))],
                measurements=measurements or None,
                qualitative_evaluations=evaluations or None,
            )
        )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="napari-vertebra", model_name=__version__
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion
        if not planar
        else _code("36554-4", "XR Spine Views", scheme="LN"),
        imaging_measurements=groups,
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[*sources, segmentation],
        content=report,
        series_instance_uid=hd.UID(),
        series_number=902,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="napari-vertebra",
        series_description="Vertebral morphometry (napari-vertebra)",
        is_complete=True,
        is_final=False,
        is_verified=False,
    )


def _frames_by_segment(segmentation) -> dict[int, list[int]]:
    """Segment number -> the SEG frame numbers (1-based) that hold it."""
    frames: dict[int, list[int]] = {}
    for index, item in enumerate(segmentation.PerFrameFunctionalGroupsSequence, start=1):
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        frames.setdefault(number, []).append(index)
    return frames


def write_dicom_exports(result, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``seg.dcm`` and ``sr.dcm`` for an analysis of DICOM input into ``out_dir``.

    Raises
    ------
    SpineIOError
        When the input was not DICOM, or its source images cannot be found again.
    """
    image = result.image
    if image.source.get("format") != "DICOM":
        raise SpineIOError(
            image.source.get("path", "input"), "is not DICOM: SEG and SR need DICOM source images"
        )
    sources = source_datasets(image)
    segmentation = build_segmentation(result, sources)
    report = build_report(result, sources, segmentation)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, dataset in (("seg", segmentation), ("sr", report)):
        path = out_dir / f"{key}.dcm"
        with atomic_path(path) as temporary:
            dataset.save_as(temporary, enforce_file_format=True)
        paths[key] = path
    return paths
