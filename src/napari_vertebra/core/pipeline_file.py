"""Pipeline files: every parameter of an analysis, saved so that it can be replayed.

A pipeline file (YAML ``.yaml``/``.yml`` or JSON ``.json``) records the segmentation model and the
SHA-256 of its card for each modality it may run on, the device policy, flip TTA, a spacing
override, the fracture classifier, the level-counting options and the Genant grading thresholds.
``analyze --pipeline``, ``batch --pipeline`` and the widgets' *Load pipeline* read it;
*Save pipeline*, ``analyze --save-pipeline`` and every batch (``OUTPUT_DIR/pipeline.yaml``) write
it. The format is documented in ``docs/batch.md``.

Card hashes make a replay honest: a file that names a model whose card has changed since it was
saved is refused with both hashes, instead of silently giving other numbers. A file without
hashes (written by hand) runs whatever model its names resolve to.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .io import SpineIOError
from .io.atomic import atomic_path
from .morphometry import GRADE_THRESHOLDS, check_grade_thresholds

#: Key and value that mark a file as a pipeline file, with the format version.
FORMAT_KEY = "napari_vertebra_pipeline"
FORMAT_VERSION = 1
MODALITIES = ("XR", "CT")

#: Sections of the file and the settings each holds (attribute names of PipelineSettings).
SECTIONS = {
    "segmentation": ("model", "device", "tta", "spacing"),
    "fracture_classifier": ("fracture_classifier",),
    "levels": (
        "top_level",
        "anchor",
        "shift",
        "lumbar_count",
        "thoracic_count",
        "regional_angle",
        "count_from_ribs",
    ),
    "grading": ("grade_thresholds",),
}


@dataclass(frozen=True)
class PipelineSettings:
    """Every parameter of :func:`~napari_vertebra.analyze`, as a pipeline file holds them.

    Attributes
    ----------
    model, device, tta, spacing, fracture_classifier
        As :func:`~napari_vertebra.analyze` takes them.
    top_level, anchor, shift, lumbar_count, thoracic_count, regional_angle, count_from_ribs
        Level options of :func:`~napari_vertebra.core.measure.measure`; ``anchor`` is
        ``(index from the top, counting from 0, level)``.
    grade_thresholds
        Height-loss fractions at which Genant grades 1, 2 and 3 begin (Genant: 0.20, 0.25,
        0.40); the file stores them in percent.
    model_card_sha256, classifier_card_sha256
        Per modality, the SHA-256 of the card the model (classifier) resolved to when the file
        was saved; ``None`` for the non-learned CT baseline or for no classifier. Empty: not
        checked.
    """

    model: str = "auto"
    device: str = "auto"
    tta: bool = False
    spacing: float | None = None
    fracture_classifier: str = "auto"
    top_level: str | None = None
    anchor: tuple[int, str] | None = None
    shift: int = 0
    lumbar_count: int = 5
    thoracic_count: int = 12
    regional_angle: tuple[str, str] | None = None
    count_from_ribs: bool = True
    grade_thresholds: tuple[float, float, float] = GRADE_THRESHOLDS
    model_card_sha256: dict[str, str | None] = field(default_factory=dict)
    classifier_card_sha256: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "grade_thresholds", check_grade_thresholds(self.grade_thresholds))
        if self.lumbar_count not in (4, 5, 6):
            raise ValueError(f"lumbar_count must be 4, 5 or 6, got {self.lumbar_count!r}")
        if self.thoracic_count not in (11, 12, 13):
            raise ValueError(f"thoracic_count must be 11, 12 or 13, got {self.thoracic_count!r}")
        if self.spacing is not None and not float(self.spacing) > 0:
            raise ValueError(f"spacing must be a positive number of mm, got {self.spacing!r}")
        if self.anchor is not None:
            index, level = self.anchor
            object.__setattr__(self, "anchor", (int(index), str(level)))
        if self.regional_angle is not None:
            upper, lower = self.regional_angle
            object.__setattr__(self, "regional_angle", (str(upper), str(lower)))

    def replace(self, **changes: Any) -> PipelineSettings:
        """A copy with ``changes``; changing the model or classifier drops its recorded hashes."""
        if "model" in changes and changes["model"] != self.model:
            changes.setdefault("model_card_sha256", {})
        if (
            "fracture_classifier" in changes
            and changes["fracture_classifier"] != self.fracture_classifier
        ):
            changes.setdefault("classifier_card_sha256", {})
        return dataclasses.replace(self, **changes)

    def analyze_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~napari_vertebra.analyze` (the source aside)."""
        return {
            "model": self.model,
            "device": self.device,
            "tta": self.tta,
            "spacing": self.spacing,
            "fracture_classifier": self.fracture_classifier,
            **self.measure_options(),
        }

    def measure_options(self) -> dict[str, Any]:
        """The level and grading options, as :func:`~napari_vertebra.measure` takes them."""
        return {
            "top_level": self.top_level,
            "anchor": self.anchor,
            "shift": self.shift,
            "lumbar_count": self.lumbar_count,
            "thoracic_count": self.thoracic_count,
            "regional_angle": self.regional_angle,
            "count_from_ribs": self.count_from_ribs,
            "grade_thresholds": self.grade_thresholds,
        }

    # -- models -------------------------------------------------------------------------------
    def resolved_models(self) -> dict[str, dict[str, Any]]:
        """Per modality, the record (name, card SHA-256 …) of the model ``model`` runs there.

        Modalities a named model cannot run on are left out. Raises SpineIOError when the model
        cannot be found.
        """
        return _resolve(self.model, _segmentation_record)

    def resolved_classifiers(self) -> dict[str, dict[str, Any] | None]:
        """Per modality, the record of the fracture classifier that runs there (None: none)."""
        return _resolve(self.fracture_classifier, _classifier_record)

    def with_model_hashes(self) -> PipelineSettings:
        """A copy recording the card hash of every model and classifier the settings resolve to."""
        return dataclasses.replace(
            self,
            model_card_sha256={m: r["card_sha256"] for m, r in self.resolved_models().items()},
            classifier_card_sha256={
                m: (r["card_sha256"] if r else None) for m, r in self.resolved_classifiers().items()
            },
        )

    def check_models(self, source: str | os.PathLike = "pipeline") -> None:
        """Raise SpineIOError (naming ``source``) when a recorded card hash no longer matches."""
        checks = (
            ("model", self.model_card_sha256, self.resolved_models),
            ("fracture classifier", self.classifier_card_sha256, self.resolved_classifiers),
        )
        for what, recorded, resolve in checks:
            if not recorded:
                continue
            current = resolve()
            for modality, expected in recorded.items():
                record = current.get(modality)
                found = record["card_sha256"] if record else None
                if found != expected:
                    name = record["name"] if record else "none"
                    raise SpineIOError(
                        source,
                        f"records the {what} for {modality} with card SHA-256 "
                        f"{_short(expected)}, but it now resolves to {name} with "
                        f"{_short(found)}: the model changed since the file was saved. "
                        "Install the recorded model, or delete its hash from the file to "
                        "accept the current one",
                    )

    # -- the file -----------------------------------------------------------------------------
    def to_document(self) -> dict[str, Any]:
        """The nested, human-readable form written to a pipeline file."""
        values = {
            "model": self.model,
            "device": self.device,
            "tta": self.tta,
            "spacing": self.spacing,
            "fracture_classifier": self.fracture_classifier,
            "top_level": self.top_level,
            "anchor": None if self.anchor is None else f"{self.anchor[0] + 1}:{self.anchor[1]}",
            "shift": self.shift,
            "lumbar_count": self.lumbar_count,
            "thoracic_count": self.thoracic_count,
            "regional_angle": None if self.regional_angle is None else list(self.regional_angle),
            "count_from_ribs": self.count_from_ribs,
            "grade_thresholds": [round(100 * t, 6) for t in self.grade_thresholds],
        }
        document: dict[str, Any] = {FORMAT_KEY: FORMAT_VERSION}
        for section, names in SECTIONS.items():
            if section == "fracture_classifier":
                document[section] = {
                    "name": values["fracture_classifier"],
                    "card_sha256": dict(self.classifier_card_sha256),
                }
                continue
            document[section] = {
                ("grade_thresholds_percent" if name == "grade_thresholds" else name): values[name]
                for name in names
            }
        document["segmentation"]["model_card_sha256"] = dict(self.model_card_sha256)
        return document

    @classmethod
    def from_document(
        cls, document: Any, source: str | os.PathLike = "pipeline"
    ) -> PipelineSettings:
        """Settings from :meth:`to_document`'s form; SpineIOError naming ``source`` on errors."""
        if not isinstance(document, dict) or FORMAT_KEY not in document:
            raise SpineIOError(
                source, f"is not a napari-vertebra pipeline file (no '{FORMAT_KEY}' key)"
            )
        if document[FORMAT_KEY] != FORMAT_VERSION:
            raise SpineIOError(
                source,
                f"is pipeline format {document[FORMAT_KEY]!r}; this version reads {FORMAT_VERSION}",
            )
        unknown = set(document) - {FORMAT_KEY, *SECTIONS}
        if unknown:
            raise SpineIOError(
                source, f"has unknown sections {sorted(unknown)}; known: {sorted(SECTIONS)}"
            )
        fields: dict[str, Any] = {}
        for section in SECTIONS:
            values = document.get(section) or {}
            if not isinstance(values, dict):
                raise SpineIOError(source, f"section '{section}' must be a mapping")
            allowed = _section_keys(section)
            unknown = set(values) - set(allowed)
            if unknown:
                raise SpineIOError(
                    source,
                    f"section '{section}' has unknown keys {sorted(unknown)}; "
                    f"known: {sorted(allowed)}",
                )
            for key, value in values.items():
                fields[allowed[key]] = value
        try:
            return cls(**_typed(fields))
        except (TypeError, ValueError) as err:
            raise SpineIOError(source, f"has an invalid setting: {err}") from None


def _section_keys(section: str) -> dict[str, str]:
    """File keys of ``section`` -> attribute names."""
    if section == "fracture_classifier":
        return {"name": "fracture_classifier", "card_sha256": "classifier_card_sha256"}
    keys = {name: name for name in SECTIONS[section]}
    if section == "grading":
        keys = {"grade_thresholds_percent": "grade_thresholds"}
    if section == "segmentation":
        keys["model_card_sha256"] = "model_card_sha256"
    return keys


def _typed(fields: dict[str, Any]) -> dict[str, Any]:
    """File values -> attribute values (percent -> fractions, ``3:L1`` -> (2, 'L1') …)."""
    out = dict(fields)
    if out.get("grade_thresholds") is not None:
        out["grade_thresholds"] = tuple(float(t) / 100 for t in out["grade_thresholds"])
    else:
        out.pop("grade_thresholds", None)
    anchor = out.get("anchor")
    if isinstance(anchor, str):
        out["anchor"] = parse_anchor(anchor)
    for name in ("model_card_sha256", "classifier_card_sha256"):
        value = out.get(name)
        if value is None:
            out.pop(name, None)
        elif (
            not isinstance(value, dict)
            or set(value) - set(MODALITIES)
            or not all(v is None or _is_sha256(v) for v in value.values())
        ):
            raise ValueError(f"{name} must map XR and/or CT to a SHA-256 (64 hex digits) or null")
    for name, kind in (
        ("tta", bool),
        ("shift", int),
        ("lumbar_count", int),
        ("count_from_ribs", bool),
    ):
        if name in out and out[name] is not None and not isinstance(out[name], kind):
            raise ValueError(f"{name} must be {kind.__name__}, got {out[name]!r}")
    if "thoracic_count" in out and not isinstance(out["thoracic_count"], int):
        raise ValueError(f"thoracic_count must be int, got {out['thoracic_count']!r}")
    for name in ("model", "device", "fracture_classifier"):
        if name in out and out[name] is None:
            out[name] = "none" if name == "fracture_classifier" else "auto"
        if name in out:
            out[name] = str(out[name])
    return out


def _is_sha256(value: Any) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


def parse_percentages(text: str) -> tuple[float, ...]:
    """``"20, 25, 40"`` (percent) -> ``(0.2, 0.25, 0.4)``; ValueError with an example otherwise."""
    try:
        return tuple(float(v) / 100 for v in str(text).replace(";", ",").split(","))
    except ValueError:
        raise ValueError(
            f"grade thresholds are three percentages such as 20, 25, 40; got {text!r}"
        ) from None


def parse_anchor(text: str) -> tuple[int, str]:
    """``"3:L1"`` (the third body from the top is L1) -> ``(2, "L1")``."""
    index, _, name = str(text).partition(":")
    if not index.strip().isdigit() or not name.strip() or int(index) < 1:
        raise ValueError(f"an anchor is INDEX:LEVEL, e.g. 3:L1 (counting from 1), got {text!r}")
    return int(index) - 1, name.strip()


def load_pipeline(path: str | os.PathLike) -> PipelineSettings:
    """Read a pipeline file (YAML or JSON, by its suffix).

    Raises
    ------
    SpineIOError
        Naming the file, when it cannot be read, is not a pipeline file, or holds an unknown or
        invalid setting.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SpineIOError(path, f"cannot be read ({err.strerror or err})") from None
    try:
        if path.suffix.lower() == ".json":
            document = json.loads(text)
        else:
            import yaml

            document = yaml.safe_load(text)
    except Exception as err:  # json.JSONDecodeError, yaml.YAMLError
        raise SpineIOError(path, f"is not valid {_format(path)}: {err}") from None
    return PipelineSettings.from_document(document, path)


def save_pipeline(
    settings: PipelineSettings, path: str | os.PathLike, overwrite: bool = False
) -> Path:
    """Write ``settings`` (YAML unless the suffix is ``.json``); never replaces a file unless
    ``overwrite``. Written to a temporary name, then renamed."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise SpineIOError(path, "already exists; choose another name or allow overwriting")
    document = settings.to_document()
    if path.suffix.lower() == ".json":
        text = json.dumps(document, indent=1) + "\n"
    else:
        import yaml

        text = "# napari-vertebra pipeline: every parameter of an analysis (docs/batch.md)\n"
        text += yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return path


def _format(path: Path) -> str:
    return "JSON" if path.suffix.lower() == ".json" else "YAML"


def _short(digest: str | None) -> str:
    return "none" if digest is None else f"{digest[:12]}…"


def _resolve(choice: str, record) -> dict[str, Any]:
    out = {}
    for modality in MODALITIES:
        try:
            out[modality] = record(choice, modality)
        except _NotFor:
            continue
    return out


class _NotFor(Exception):
    """The chosen model does not run on this modality."""


def _segmentation_record(choice: str, modality: str) -> dict[str, Any]:
    from .pipeline import CT_BASELINE, _model_record, default_segmentation_model
    from .segment.registry import find_model

    if choice == "auto":
        choice = default_segmentation_model(modality)
    if choice == CT_BASELINE:
        if modality != "CT":
            raise _NotFor
        return {"name": CT_BASELINE, "card_sha256": None}
    card = find_model(choice)
    if card.modality != modality:
        raise _NotFor
    return _model_record(card)


def _classifier_record(choice: str, modality: str) -> dict[str, Any] | None:
    from .pipeline import _fracture_classifier, _model_record

    try:
        card = _fracture_classifier(choice, modality)
    except SpineIOError as err:
        if "classifier; the input is" in err.problem:
            raise _NotFor from None
        raise
    return _model_record(card) if card is not None else None
