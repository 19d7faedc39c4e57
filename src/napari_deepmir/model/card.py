"""The model card: everything needed to use a model correctly, stored as JSON beside its weights.

A card is checked against its schema whenever one is made (:meth:`ModelCard.from_dict` or the
constructor): types, and ranges that keep a card from asking for absurd networks or working grids.
A card that breaks them raises ``ValueError`` or ``TypeError`` naming the field; unknown keys inside ``architecture``,
``normalisation`` and ``postprocess`` are refused rather than silently ignored.
"""

import datetime
import math
from dataclasses import asdict, dataclass, field, fields

from ..conventions import CLASS_NAMES, MODALITIES

FORMAT_VERSION = 1

#: Allowed range of each architecture value (inclusive).
ARCHITECTURE_RANGES = {"base_filters": (1, 256), "depth": (2, 8), "context_slices": (0, 8)}
#: Allowed working-grid spacing (mm, inclusive).
SPACING_RANGE_MM = (0.3, 5.0)
#: Allowed range of each post-processing value; ``min_qsm_ppb`` may also be None (no QSM rule).
POSTPROCESS_RANGES = {
    "min_volume_mm3": (0.0, 1000.0),
    "min_probability": (0.0, 1.0),
    "min_qsm_ppb": (-1000.0, 1000.0),
    "min_probability_no_qsm": (0.0, 1.0),
    "tube_min_length_mm": (0.0, 100.0),
}
#: Allowed range of each value of the second stage (``verifier``; :mod:`.verifier`).
VERIFIER_RANGES = {"base_filters": (1, 128), "min_probability": (0.0, 1.0)}
#: Optional values of the second stage: how many blob candidates it also judges, and its threshold for them.
VERIFIER_BLOB_RANGES = {"blob_candidates": (0, 500), "blob_min_probability": (0.0, 1.0)}
#: Allowed patch size of the second stage, in working voxels per axis.
VERIFIER_PATCH_RANGE = (4, 64)
#: Acquisition values a card may state the training range of (``training_ranges``), with their plausible bounds.
TRAINING_RANGE_BOUNDS = {"echo_time_s": (0.0, 1.0), "field_strength_t": (0.1, 20.0)}
#: How the range warnings name each value: (title, unit, factor from the stored unit to the shown one).
_RANGE_WORDS = {"echo_time_s": ("echo time", "ms", 1e3), "field_strength_t": ("field strength", "T", 1.0)}
#: Allowed robust z-score clip.
CLIP_RANGE = (0.1, 100.0)
#: The class layouts a model may have: the project's multiclass labels, or a single lesion class.
CLASS_LAYOUTS = (
    {"0": "background", **{str(k): v for k, v in CLASS_NAMES.items()}},
    *({"0": "background", "1": name} for name in CLASS_NAMES.values()),
)
#: Card fields a model file must state (the others are provenance and have defaults).
REQUIRED = ("architecture", "modalities", "classes", "spacing_mm", "normalisation", "postprocess", "format_version")


def now_iso() -> str:
    """The time now, UTC, as an ISO 8601 string to the second (the card's ``created``)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_number(where: str, value, low: float, high: float, *, integer: bool = False) -> None:
    kind = "an integer" if integer else "a number"
    if not (isinstance(value, int) and not isinstance(value, bool) if integer else _is_number(value)):
        raise ValueError(f"{where} must be {kind}, got {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{where} must be in {low:g}..{high:g}, got {value!r}")


def _check_keys(where: str, value, allowed, required=()) -> None:
    if not isinstance(value, dict):
        raise TypeError(f"{where} must be an object, got {value!r}")
    unknown, missing = sorted(set(value) - set(allowed)), [k for k in required if k not in value]
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown} (known: {list(allowed)})")
    if missing:
        raise ValueError(f"{where}: missing keys {missing}")


@dataclass
class ModelCard:
    """Architecture, inputs, classes, working grid, normalisation, post-processing, provenance, metrics."""

    name: str = "deepmir"
    architecture: dict = field(default_factory=lambda: {"base_filters": 16, "depth": 5, "context_slices": 1})
    modalities: list = field(default_factory=lambda: list(MODALITIES))
    classes: dict = field(default_factory=lambda: dict(CLASS_LAYOUTS[0]))
    #: Working grid of the network: in-plane x, y and slice spacing (mm), after reorientation to RAS.
    spacing_mm: list = field(default_factory=lambda: [1.0, 1.0, 2.0])
    normalisation: dict = field(default_factory=lambda: {"method": "robust-z", "clip": 8.0})
    postprocess: dict = field(
        default_factory=lambda: {"min_volume_mm3": 1.0, "min_probability": 0.5, "min_qsm_ppb": 20.0}
    )
    #: The second stage (a 3D patch classifier that verifies each lesion), or None for the U-Net alone.
    verifier: dict | None = None
    training: dict = field(default_factory=dict)
    #: Acquisition ranges of the training data, ``{"echo_time_s": [min, max], "field_strength_t": [min, max]}``
    #: (optional: a card without them checks nothing); a subject outside them is warned about.
    training_ranges: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    parent: dict | None = None
    description: str = ""
    #: A caution every detection with this model repeats in its warnings (e.g. a model not yet good enough).
    caution: str = ""
    created: str = field(default_factory=now_iso)
    format_version: int = FORMAT_VERSION

    def __post_init__(self):
        for name in ("name", "description", "caution", "created"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be text, got {getattr(self, name)!r}")
        for name in ("training", "metrics"):
            if not isinstance(getattr(self, name), dict):
                raise TypeError(f"{name} must be an object, got {getattr(self, name)!r}")
        if self.parent is not None and not isinstance(self.parent, dict):
            raise ValueError(f"parent must be an object or null, got {self.parent!r}")
        _check_number("format_version", self.format_version, 1, FORMAT_VERSION, integer=True)
        _check_keys("architecture", self.architecture, ARCHITECTURE_RANGES, ARCHITECTURE_RANGES)
        for key, (low, high) in ARCHITECTURE_RANGES.items():
            _check_number(f"architecture.{key}", self.architecture[key], low, high, integer=True)
        modalities = self.modalities if isinstance(self.modalities, (list, tuple)) else [None]
        if (
            not all(m in MODALITIES for m in modalities)
            or len(set(modalities)) != len(modalities)
            or "swi" not in modalities
        ):
            raise ValueError(
                f"modalities must be distinct names among {list(MODALITIES)}, SWI among them; got {self.modalities!r}"
            )
        self.modalities = [m for m in MODALITIES if m in self.modalities]
        if self.classes not in CLASS_LAYOUTS:
            raise ValueError(f"classes must be one of {CLASS_LAYOUTS}, got {self.classes!r}")
        if not isinstance(self.spacing_mm, (list, tuple)) or len(self.spacing_mm) != 3:
            raise ValueError(f"spacing_mm must be 3 numbers (x, y, slice), got {self.spacing_mm!r}")
        for axis, value in zip("xyz", self.spacing_mm):
            _check_number(f"spacing_mm ({axis})", value, *SPACING_RANGE_MM)
        self.spacing_mm = [float(v) for v in self.spacing_mm]
        _check_keys("normalisation", self.normalisation, ("method", "clip"), ("method",))
        if self.normalisation["method"] != "robust-z":
            raise ValueError(f"normalisation.method must be 'robust-z', got {self.normalisation['method']!r}")
        if "clip" in self.normalisation:
            _check_number("normalisation.clip", self.normalisation["clip"], *CLIP_RANGE)
        _check_keys("postprocess", self.postprocess, POSTPROCESS_RANGES, ("min_probability",))
        for key, value in self.postprocess.items():
            if not (key == "min_qsm_ppb" and value is None):
                _check_number(f"postprocess.{key}", value, *POSTPROCESS_RANGES[key])
        _check_keys("training_ranges", self.training_ranges, TRAINING_RANGE_BOUNDS)
        for key, value in self.training_ranges.items():
            if not isinstance(value, (list, tuple)) or len(value) != 2 or not value[0] <= value[1]:
                raise ValueError(f"training_ranges.{key} must be [min, max] with min <= max, got {value!r}")
            for end in value:
                _check_number(f"training_ranges.{key}", end, *TRAINING_RANGE_BOUNDS[key])
        if self.verifier is not None:
            self._check_verifier()

    def _check_verifier(self) -> None:
        known = (*VERIFIER_RANGES, *VERIFIER_BLOB_RANGES, "patch_shape")
        _check_keys("verifier", self.verifier, known, (*VERIFIER_RANGES, "patch_shape"))
        if ("blob_candidates" in self.verifier) != ("blob_min_probability" in self.verifier):
            raise ValueError("verifier: blob_candidates and blob_min_probability come together")
        for key, (low, high) in VERIFIER_BLOB_RANGES.items():
            if key in self.verifier:
                _check_number(f"verifier.{key}", self.verifier[key], low, high, integer=key == "blob_candidates")
        _check_number(
            "verifier.base_filters", self.verifier["base_filters"], *VERIFIER_RANGES["base_filters"], integer=True
        )
        _check_number("verifier.min_probability", self.verifier["min_probability"], *VERIFIER_RANGES["min_probability"])
        shape = self.verifier["patch_shape"]
        if not isinstance(shape, (list, tuple)) or len(shape) != 3:
            raise ValueError(f"verifier.patch_shape must be 3 integers, got {shape!r}")
        for value in shape:
            _check_number("verifier.patch_shape", value, *VERIFIER_PATCH_RANGE, integer=True)
        self.verifier["patch_shape"] = [int(v) for v in shape]

    def range_warnings(self, scan: dict) -> list[str]:
        """Warnings for the acquisition values in ``scan`` (``echo_time_s``, ``field_strength_t``) outside
        :attr:`training_ranges` (none for values the scan or the card does not state), after the card's
        :attr:`caution`."""
        found = [f"model {self.name}: {self.caution}"] if self.caution else []
        for key, (low, high) in self.training_ranges.items():
            value = scan.get(key)
            if value is not None and not low <= value <= high:
                title, unit, factor = _RANGE_WORDS[key]
                found.append(
                    f"{title} {value * factor:g} {unit} is outside what model {self.name} was trained on "
                    f"({low * factor:g}..{high * factor:g} {unit}): check its detections with care"
                )
        return found

    @property
    def context_slices(self) -> int:
        return int(self.architecture.get("context_slices", 0))

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        """Network input channels: modalities x (2 * context_slices + 1) neighbouring slices."""
        return len(self.modalities) * (2 * self.context_slices + 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelCard":
        """A card from its JSON object, which must state every field in :data:`REQUIRED`."""
        if not isinstance(data, dict):
            raise TypeError(f"a model card is a JSON object, got {type(data).__name__}")
        missing = [k for k in REQUIRED if k not in data]
        if missing:
            raise ValueError(f"missing fields {missing}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
