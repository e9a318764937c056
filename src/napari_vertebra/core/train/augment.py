"""Random augmentation of a training pair on the model grid (numpy; channels first).

Geometric: a crop (``patch`` pixels, padded where the image is smaller), a small rotation and
scaling, an elastic deformation, and the antero-posterior flip. The cranio-caudal flip is never
used: the sacrum is below L5 and levels are counted upwards from it, so an upside-down spine is
not anatomy a model should accept. Intensity: gamma, contrast and brightness, Gaussian blur and
noise. Resolution (off unless asked for): coarser voxels, as a clinical CT reconstructed with
thick slices or a large pixel gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..preprocess import resample


@dataclass(frozen=True)
class Augmentation:
    """Strength of each random change (0 turns it off)."""

    rotation_deg: float = 10.0
    scale: float = 0.15
    elastic_px: float = 4.0
    flip_ap: float = 0.5
    gamma: float = 0.3
    contrast: float = 0.2
    blur_px: float = 1.0
    noise: float = 0.1
    #: Largest factor by which the voxels are made coarser (half the draws; 0 or 1: never).
    coarsen: float = 0.0


def coarsen(image: np.ndarray, factor: float) -> np.ndarray:
    """``image`` (C, H, W) as seen through voxels ``factor`` times larger, on the same grid.

    The stack is resampled to the coarse spacing (anti-aliased, as the model inputs are
    resampled; the channel axis of a 2.5D stack, its neighbouring slices, too) and back
    linearly: detail finer than the coarse voxel is lost, as in a CT reconstructed at that
    spacing.
    """
    if factor <= 1.0:
        return image
    coarse_spacing = [factor if n > 1 else 1.0 for n in image.shape]
    coarse, mapping = resample(image, (1.0,) * image.ndim, coarse_spacing)
    return mapping.to_source(coarse).astype(image.dtype, copy=False)


def random_crop(
    image: np.ndarray, target: np.ndarray, patch: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A ``patch``² crop (channels first image), mostly centred on labelled pixels."""
    spatial = target.shape
    pad = [max(0, patch - n) for n in spatial]
    if any(pad):
        widths = [(p // 2, p - p // 2) for p in pad]
        image = np.pad(image, [(0, 0), *widths], mode="constant", constant_values=image.min())
        target = np.pad(target, widths, mode="constant")
        spatial = target.shape
    foreground = np.argwhere(target > 0)
    if len(foreground) and rng.random() < 0.8:
        centre = foreground[rng.integers(len(foreground))]
        starts = [
            int(np.clip(c - patch // 2 + rng.integers(-patch // 4, patch // 4 + 1), 0, n - patch))
            for c, n in zip(centre, spatial, strict=True)
        ]
    else:
        starts = [int(rng.integers(0, n - patch + 1)) for n in spatial]
    box = tuple(slice(s, s + patch) for s in starts)
    return image[(slice(None), *box)], target[box]


def augment(
    image: np.ndarray,
    target: np.ndarray,
    rng: np.random.Generator,
    settings: Augmentation = Augmentation(),
) -> tuple[np.ndarray, np.ndarray]:
    """One random augmentation of a 2D pair (image ``(C, H, W)``, target ``(H, W)``)."""
    image = image.astype(np.float32, copy=True)
    height, width = target.shape
    grid = np.mgrid[0:height, 0:width].astype(np.float32)
    centre = np.array([(height - 1) / 2, (width - 1) / 2], dtype=np.float32)[:, None, None]
    angle = np.deg2rad(rng.uniform(-1, 1) * settings.rotation_deg)
    zoom = 1.0 + rng.uniform(-1, 1) * settings.scale
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / zoom
    coords = np.einsum("ij,jhw->ihw", rot, grid - centre) + centre
    if settings.elastic_px > 0:
        for axis in range(2):
            field = ndimage.gaussian_filter(rng.normal(size=(height, width)), 12.0)
            field *= settings.elastic_px / max(np.abs(field).max(), 1e-6)
            coords[axis] += field
    fill = float(image.min())
    image = np.stack(
        [ndimage.map_coordinates(c, coords, order=1, mode="constant", cval=fill) for c in image]
    )
    target = ndimage.map_coordinates(target, coords, order=0, mode="constant", cval=0)
    if rng.random() < settings.flip_ap:
        image, target = image[:, :, ::-1], target[:, ::-1]
    if settings.coarsen > 1.0 and rng.random() < 0.5:
        image = coarsen(image, float(rng.uniform(1.0, settings.coarsen)))
    if settings.gamma:
        low, high = float(image.min()), float(image.max())
        unit = (image - low) / max(high - low, 1e-6)
        unit **= float(np.exp(rng.uniform(-1, 1) * settings.gamma))
        image = unit * (high - low) + low
    if settings.contrast:
        image = image * (1 + rng.uniform(-1, 1) * settings.contrast) + rng.uniform(-1, 1) * 0.2
    if settings.blur_px and rng.random() < 0.5:
        sigma = rng.uniform(0, settings.blur_px)
        image = np.stack([ndimage.gaussian_filter(c, sigma) for c in image])
    if settings.noise:
        image = image + rng.normal(0, rng.uniform(0, settings.noise), image.shape)
    return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(target)
