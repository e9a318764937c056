"""Dock widgets of the plugin (declared in napari.yaml); one module per widget."""

from ..gl_safety import keep_triton_away

# Widgets are built once a viewer (and its OpenGL) exists: make the deep-learning imports that
# follow safe on software OpenGL before any of them happens.
keep_triton_away()
