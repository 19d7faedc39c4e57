"""What both trainers (the U-Net's, :mod:`.trainer`, and the second stage's, :mod:`.verifier`) share: the
run's config, its reports and result, the annotated subjects and their split, how a validation is scored,
the thresholds tried, and the start of a run (paths, output folder, device). Imports no torch.
"""

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..conventions import CLASS_NAMES
from ..detection.inference import select_device
from ..lesions.evaluate import lesion_metrics
from ..model.files import check_model_destination, read_card
from .data import AnnotatedSubject, annotated_folders, load_annotated_subject, prepare_annotated

#: Thresholds tried on the validation subjects for ``postprocess.min_probability`` (and the verifier's).
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Without validation subjects, the threshold is tuned on at most this many training subjects.
THRESHOLD_SUBJECTS = 4
#: Second-stage steps after fine-tuning a model that has a verifier.
DEFAULT_VERIFIER_STEPS = 300


@dataclass
class TrainingConfig:
    """Everything a training run needs. ``data`` folders and/or in-memory ``samples`` (subject, labels).

    ``base``: a model to fine-tune (its architecture and working grid are kept); ``modalities``, if given
    with a base, a subset of the base's: the other modalities' input channels are dropped from its
    first layer (:mod:`.transfer`). Without a base a new network is built from ``base_filters``,
    ``depth``, ``context_slices``, ``modalities`` (default all), ``spacing_mm``.
    ``overwrite``: replace a model already at ``out`` (a folder holding anything else is never replaced).
    ``patience``: validations without improvement before stopping early (0: never); ``max_minutes``:
    a wall-time budget, after which the run validates once more and ends (the learning rate anneals
    by steps or by time, whichever is further along). ``data_workers``: processes
    preparing batches (None: none on the CPU, several beside a GPU). ``registration``: how T2 and QSM
    are checked against the SWI when subjects are read (``auto``, ``check``, ``off``; see
    :mod:`napari_deepmir.io.registration`).
    """

    out: Path
    data: list[Path] = field(default_factory=list)
    samples: list[tuple] = field(default_factory=list)
    base: Path | None = None
    name: str | None = None
    base_filters: int = 16
    depth: int = 5
    context_slices: int = 1
    modalities: tuple[str, ...] | None = None
    spacing_mm: tuple[float, float, float] | None = None
    steps: int = 300
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_share: float = 0.05
    batch_size: int = 8
    patch_size: int = 64
    val_share: float = 0.25
    seed: int = 0
    device: str = "auto"
    eval_every: int = 50
    patience: int = 0
    max_minutes: float | None = None
    bf16: bool = False
    augment: bool = True
    #: Probability that a training sample has one input modality flattened (:mod:`.augment`); 0: never.
    modality_dropout: float = 0.0
    tune_threshold: bool = True
    checkpoint_every: int = 50
    resume: bool = False
    overwrite: bool = False
    data_workers: int | None = None
    registration: str = "auto"
    command: str | None = None
    #: Steps of second-stage training after a fine-tune (:mod:`.verifier`); None: 300 when the base has one.
    verifier_steps: int | None = None

    def __post_init__(self):
        """Folders and model paths as ``Path`` (a CLI, a widget and the API give strings or Paths), modalities and
        spacing as tuples (None or empty: the default)."""
        self.out = Path(self.out)
        self.data = [Path(folder) for folder in self.data]
        self.samples = list(self.samples)
        self.base = None if self.base is None else Path(self.base)
        self.modalities = tuple(self.modalities) if self.modalities else None
        self.spacing_mm = None if self.spacing_mm is None else tuple(self.spacing_mm)

    @property
    def second_stage_steps(self) -> int:
        """Verifier steps to run after the U-Net (0: none)."""
        if self.verifier_steps is not None:
            return self.verifier_steps
        if self.base is None:
            return 0
        return DEFAULT_VERIFIER_STEPS if read_card(self.base).verifier is not None else 0


@dataclass
class TrainingReport:
    """Progress after one step. ``metrics`` (per class: sensitivity, precision, f1, ...) only on validation steps."""

    step: int
    total_steps: int
    loss: float | None
    lr: float
    metrics: dict | None = None
    score: float | None = None
    best_score: float | None = None
    best_step: int | None = None
    saved: bool = False
    elapsed_s: float = 0.0


@dataclass
class TrainingResult:
    """What a run wrote; ``model_path`` and ``card`` are None when it was stopped before its first step."""

    model_path: Path | None
    card: object
    base_metrics: dict | None
    best_metrics: dict | None
    steps_run: int
    best_step: int
    stopped_early: bool


def validation_score(metrics: dict | None) -> float:
    """Mean lesion-wise F1 over the classes that have truth or predicted lesions (0 when none has)."""
    if not metrics:
        return -math.inf
    values = [metrics[name]["f1"] for name in CLASS_NAMES.values() if not math.isnan(metrics[name]["f1"])]
    return float(np.mean(values)) if values else 0.0


def pooled_metrics(per_subject: list[dict]) -> dict:
    """Lesion-wise metrics per class from counts pooled over subjects, plus mean false positives per subject."""
    pooled = {}
    for name in CLASS_NAMES.values():
        counts = [
            sum(s[name][key] for s in per_subject) for key in ("n_truth", "n_truth_found", "n_pred", "n_pred_true")
        ]
        pooled[name] = lesion_metrics(*counts)
        pooled[name]["fp_per_subject"] = pooled[name]["false_positives"] / max(len(per_subject), 1)
    return pooled


def load_training_subjects(config: TrainingConfig, card) -> list[AnnotatedSubject]:
    """Every annotated subject of ``config`` (folders, then in-memory samples), prepared for ``card``."""
    subjects = (
        [load_annotated_subject(folder, card, config.registration) for folder in annotated_folders(config.data)]
        if config.data
        else []
    )
    subjects += [prepare_annotated(subject, labels, card) for subject, labels in config.samples]
    if not subjects:
        raise ValueError("no annotated subjects: give data folders or samples")
    if not any(subject.truth.any() for subject in subjects):
        warnings.warn(
            f"no lesion in the annotations of any of the {len(subjects)} subject(s) ({subjects[0].name}...): the "
            "model learns only background and will find nothing; check the *_dseg label maps",
            stacklevel=3,
        )
    return subjects


def split_subjects(subjects: list, val_share: float, seed: int) -> tuple[list, list]:
    """(train, validation) by a seeded shuffle; at least one of each when there are 2+ subjects and a share."""
    order = np.random.default_rng(seed).permutation(len(subjects))
    n_val = (
        0 if val_share <= 0 or len(subjects) < 2 else min(len(subjects) - 1, max(1, round(val_share * len(subjects))))
    )
    return [subjects[i] for i in order[n_val:]], [subjects[i] for i in order[:n_val]]


def training_split(config: TrainingConfig, card) -> tuple[list[AnnotatedSubject], list[AnnotatedSubject]]:
    """(train, validation) subjects of ``config``, loaded for ``card`` and split by its seed."""
    return split_subjects(load_training_subjects(config, card), config.val_share, config.seed)


def open_destination(config: TrainingConfig, may_replace: bool):
    """The torch device of the run, once ``config.out`` is known to take its model (new, empty, or a model
    that ``may_replace`` allows replacing)."""
    check_model_destination(config.out, may_replace)
    return select_device(config.device)
