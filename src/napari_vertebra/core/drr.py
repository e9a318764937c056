"""Lateral projections of labelled CTs (digitally reconstructed radiographs, DRRs).

No labelled real lateral radiographs can be redistributed, so a CT with vertebral-body labels is
turned into a radiograph with a projected label map, and a public CT dataset can train a
radiograph model. The beam runs along canonical axis 2 (patient right → left), so the projection
lands in the 2D canonical orientation (I, P) of a lateral radiograph (docs/data-model.md).

Physics, simplified and stated:

- attenuation from HU: μ = μ_water (1 + HU / 1000) for soft tissue and air; bone (HU > 0) is
  weighted by ``bone_contrast`` ≥ 1, which stands for the stronger photoelectric absorption of
  bone at low tube voltage (a lower kVp gives a higher bone contrast);
- a parallel beam: the projection is the line integral of μ along axis 2. The geometric
  magnification of a real film (source-image / source-object distance, 1.05–1.25 on lateral
  spine films) multiplies the pixel spacing; the cone-beam perspective is not modelled;
- detector and processing: the displayed value is the line integral (bone bright, as after the
  logarithmic processing of a digital radiograph), through a random window and gamma, with
  detector blur and quantum noise, stored on a 12-bit scale like the phantom radiographs.

Labels: a pixel belongs to the vertebra whose body the ray crosses for the longest path, when that
path is at least ``min_path_mm``; the sacrum (26) the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from .image import SpineImage

#: Linear attenuation of water near 70 keV, 1/mm.
MU_WATER_PER_MM = 0.019


@dataclass(frozen=True)
class ProjectionGeometry:
    """How a CT is turned into a lateral radiograph (see the module docstring).

    Attributes
    ----------
    axial_rotation_deg
        Patient rotation about the cranio-caudal axis (a beam off the true lateral).
    coronal_tilt_deg
        Rotation about the antero-posterior axis (a tilted beam doubles the endplate contours).
    magnification
        Factor on the pixel spacing (source-image / source-object distance).
    bone_contrast
        Weight of bone attenuation over water (1.0 at high kVp, up to about 1.8 at low kVp).
    window_low, window_high
        Fractions of the projection's range mapped to black and white.
    gamma
        Exponent of the displayed intensity.
    blur_mm
        Gaussian detector blur (sigma, mm).
    noise
        Standard deviation of the quantum noise relative to the displayed range.
    soft_tissue_scale
        Factor on the attenuation of soft tissue and fat (HU ≤ 0): a patient wider than the CT's
        field of view (phantoms and cropped CTs are narrower than an abdomen, whose soft tissue
        hides the spine on a real lateral film).
    gas_blobs
        Number of bowel-gas shadows (dark, 15–40 mm) laid over the front half of the patient.
    """

    axial_rotation_deg: float = 0.0
    coronal_tilt_deg: float = 0.0
    magnification: float = 1.0
    bone_contrast: float = 1.0
    window_low: float = 0.0
    window_high: float = 1.0
    gamma: float = 1.0
    blur_mm: float = 0.0
    noise: float = 0.0
    soft_tissue_scale: float = 1.0
    gas_blobs: int = 0

    @classmethod
    def random(
        cls, rng: np.random.Generator, max_soft_tissue_scale: float = 3.0
    ) -> ProjectionGeometry:
        """A plausible lateral spine film: beam within ±6° axially and ±4° coronally,
        magnification 1.05–1.25, kVp from 70 to 100 (bone contrast 1.0–1.8), a patient up to
        ``max_soft_tissue_scale`` times as wide as the CT, up to 4 gas shadows, blur up to that
        of 3 mm slices."""
        return cls(
            axial_rotation_deg=float(rng.uniform(-6, 6)),
            coronal_tilt_deg=float(rng.uniform(-4, 4)),
            magnification=float(rng.uniform(1.05, 1.25)),
            bone_contrast=float(rng.uniform(1.0, 1.8)),
            window_low=float(rng.uniform(0.0, 0.25)),
            window_high=float(rng.uniform(0.85, 1.0)),
            gamma=float(rng.uniform(0.7, 1.4)),
            blur_mm=float(rng.uniform(0.2, 2.0)),
            noise=float(rng.uniform(0.005, 0.03)),
            soft_tissue_scale=float(rng.uniform(1.0, max(max_soft_tissue_scale, 1.0))),
            gas_blobs=int(rng.integers(0, 5)),
        )


def _rotate(volume: np.ndarray, spacing: np.ndarray, geometry: ProjectionGeometry, order: int):
    """Rotate about the volume's centre in mm (axes I, P, L), keeping its grid."""
    a = np.deg2rad(geometry.axial_rotation_deg)  # about I: mixes P and L
    c = np.deg2rad(geometry.coronal_tilt_deg)  # about P: mixes I and L
    about_i = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    about_p = np.array([[np.cos(c), 0, -np.sin(c)], [0, 1, 0], [np.sin(c), 0, np.cos(c)]])
    rotation = about_i @ about_p
    if np.allclose(rotation, np.eye(3)):
        return volume
    # Output index -> input index: i_in = S^-1 R^T S (i_out - centre) + centre.
    scale = np.diag(spacing)
    matrix = np.linalg.inv(scale) @ rotation.T @ scale
    centre = (np.array(volume.shape) - 1) / 2
    offset = centre - matrix @ centre
    fill = -1000.0 if order else 0
    return ndimage.affine_transform(
        volume, matrix, offset=offset, order=order, mode="constant", cval=fill
    )


def _add_gas(
    path: np.ndarray, spacing: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    """Dark gas shadows (air replacing 20–60 mm of soft tissue) in the front half of the patient."""
    inside = np.argwhere(path > 0.3 * path.max())
    if not len(inside):
        return path
    front = inside[inside[:, 1] < np.median(inside[:, 1])]
    rows, cols = np.mgrid[0 : path.shape[0], 0 : path.shape[1]]
    out = path.copy()
    for _ in range(count):
        centre = (front if len(front) else inside)[rng.integers(len(front) or len(inside))]
        radius = rng.uniform(7.5, 20.0)
        distance2 = ((rows - centre[0]) * spacing[0]) ** 2 + ((cols - centre[1]) * spacing[1]) ** 2
        depth = rng.uniform(20.0, 60.0) * MU_WATER_PER_MM
        out -= depth * np.exp(-distance2 / (2 * radius**2))
    return np.clip(out, 0.0, None)


def lateral_projection(
    ct: SpineImage,
    bodies: SpineImage,
    geometry: ProjectionGeometry | None = None,
    rng: np.random.Generator | None = None,
    min_path_mm: float = 2.0,
) -> tuple[SpineImage, SpineImage]:
    """A lateral radiograph and its vertebral-body label map from a CT and its body labels.

    Parameters
    ----------
    ct
        CT in HU, canonical axes (I, P, L), with spacing.
    bodies
        Vertebral bodies in VerSe IDs (sacrum 26) on the CT's grid; whole-vertebra labels would
        project their posterior elements too, so reduce them to bodies first.
    geometry
        Projection settings; the identity projection (true lateral, no blur or noise) if None.
    rng
        Random generator for the noise (a fixed seed when None).
    min_path_mm
        Shortest path through a body for its pixel to be labelled.

    Returns
    -------
    (SpineImage, SpineImage)
        The radiograph (XR, uint16, bone bright) and its labels, spacing ``(s_I, s_P) ×
        magnification``; the geometry is kept in ``source["drr_geometry"]``.
    """
    if ct.ndim != 3 or ct.modality != "CT" or ct.spacing is None:
        raise ValueError("a lateral projection needs a CT volume with its voxel spacing")
    if bodies.shape != ct.shape:
        raise ValueError(f"body labels {bodies.shape} are not on the CT's grid {ct.shape}")
    geometry = geometry or ProjectionGeometry()
    rng = rng or np.random.default_rng(0)
    spacing = np.asarray(ct.spacing, dtype=float)
    hu = _rotate(np.asarray(ct.array, dtype=np.float32), spacing, geometry, order=1)
    labels = _rotate(np.asarray(bodies.array), spacing, geometry, order=0)

    relative = np.clip(1.0 + hu / 1000.0, 0.0, None) * geometry.soft_tissue_scale
    bone = hu > 0
    relative[bone] = 1.0 + geometry.bone_contrast * hu[bone] / 1000.0
    path = relative.sum(axis=2) * MU_WATER_PER_MM * spacing[2]
    if geometry.gas_blobs:
        path = _add_gas(path, spacing[:2], geometry.gas_blobs, rng)

    # The window is set on the patient (rays through more than a fifth of the thickest path),
    # not on the air around, as a radiographer's automatic exposure does.
    inside = path > 0.2 * path.max()
    low, high = np.quantile(path[inside] if inside.any() else path, [0.01, 0.999])
    span = max(float(high - low), 1e-6)
    lo = low + geometry.window_low * span
    hi = low + geometry.window_high * span
    shown = np.clip((path - lo) / max(hi - lo, 1e-6), 0.0, 1.0) ** geometry.gamma
    if geometry.blur_mm > 0:
        shown = ndimage.gaussian_filter(shown, geometry.blur_mm / spacing[:2])
    if geometry.noise > 0:
        shown = shown + rng.normal(0.0, geometry.noise, shown.shape) * np.sqrt(shown + 0.05)
    radiograph = np.round(np.clip(shown, 0.0, 1.0) * 4095).astype(np.uint16)

    projected = np.zeros(path.shape, dtype=np.uint8)
    longest = np.zeros(path.shape, dtype=np.float32)
    for value in np.unique(labels):
        if value == 0:
            continue
        length = (labels == value).sum(axis=2) * spacing[2]
        wins = (length >= min_path_mm) & (length > longest)
        projected[wins] = value
        longest[wins] = length[wins]

    pixel = tuple(float(s) * geometry.magnification for s in spacing[:2])
    source = {**ct.source, "drr_geometry": asdict(geometry)}
    common = dict(
        spacing=pixel,
        modality="XR",
        axis_codes=("I", "P") if ct.axis_codes is not None else None,
        origin=tuple(float(o) for o in ct.origin[:2]),
        source=source,
    )
    return (
        SpineImage(radiograph, kind="image", **common),
        SpineImage(projected, kind="labels", **common),
    )
