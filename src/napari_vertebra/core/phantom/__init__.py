"""Synthetic spine phantoms with exact ground truth (lateral radiographs and CT volumes)."""

from .anatomy import FRACTURE_TYPES, GRADE_LOSS_RANGE, genant_grade_of_loss
from .cases import LANDMARK_NAMES, Phantom, generate_phantoms, make_phantom, write_phantom

__all__ = [
    "FRACTURE_TYPES",
    "GRADE_LOSS_RANGE",
    "LANDMARK_NAMES",
    "Phantom",
    "generate_phantoms",
    "genant_grade_of_loss",
    "make_phantom",
    "write_phantom",
]
