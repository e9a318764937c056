"""Computation core: plain functions on numpy arrays and dataclasses. Never imports napari or Qt."""
