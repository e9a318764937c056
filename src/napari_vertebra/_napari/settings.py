"""Widget parameters kept between uses, as one small JSON file per widget.

The folder is ``NAPARI_VERTEBRA_SETTINGS`` when set (tests point it at a temporary folder),
else the user's configuration folder (platformdirs). Unreadable files are ignored: settings are
a convenience, never a reason to fail.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..core.io.atomic import atomic_path

SETTINGS_VARIABLE = "NAPARI_VERTEBRA_SETTINGS"


def settings_folder() -> Path:
    folder = os.environ.get(SETTINGS_VARIABLE)
    if folder:
        return Path(folder)
    from platformdirs import user_config_dir

    return Path(user_config_dir("napari-vertebra", appauthor=False))


def load_settings(widget: str) -> dict[str, Any]:
    """Saved values of ``widget``'s fields ({} when there are none or they cannot be read)."""
    path = settings_folder() / f"{widget}.json"
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return values if isinstance(values, dict) else {}


def save_settings(widget: str, values: dict[str, Any]) -> None:
    """Save ``widget``'s field values (written to a temporary name, then renamed)."""
    folder = settings_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / f"{widget}.json") as tmp:
            tmp.write_text(json.dumps(values, indent=1, default=str))
    except OSError:
        pass
