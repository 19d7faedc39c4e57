"""The model card: everything needed to use a model correctly, stored as JSON beside its weights."""

import datetime
from dataclasses import asdict, dataclass, field, fields

from ..conventions import CLASS_NAMES, MODALITIES

FORMAT_VERSION = 1


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclass
class ModelCard:
    """Architecture, inputs, classes, working grid, normalisation, post-processing, provenance, metrics."""

    name: str = "deepmir"
    architecture: dict = field(default_factory=lambda: {"base_filters": 16, "depth": 5, "context_slices": 1})
    modalities: list = field(default_factory=lambda: list(MODALITIES))
    classes: dict = field(default_factory=lambda: {"0": "background", **{str(k): v for k, v in CLASS_NAMES.items()}})
    #: Working grid of the network: in-plane x, y and slice spacing (mm), after reorientation to RAS.
    spacing_mm: list = field(default_factory=lambda: [1.0, 1.0, 2.0])
    normalisation: dict = field(default_factory=lambda: {"method": "robust-z", "clip": 8.0})
    postprocess: dict = field(default_factory=lambda: {"min_volume_mm3": 1.0, "min_probability": 0.5, "min_qsm_ppb": 20.0})
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    parent: dict | None = None
    description: str = ""
    created: str = field(default_factory=_now)
    format_version: int = FORMAT_VERSION

    def __post_init__(self):
        self.modalities = [m for m in MODALITIES if m in self.modalities]
        if "swi" not in self.modalities:
            raise ValueError(f"model {self.name!r}: SWI is required among the modalities, got {self.modalities}")

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
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
