"""Fine-tuning from napari layers, without Qt: annotated samples from layers and the training settings.

The Fine-tune widget wires these to :func:`napari_deepmir.training.trainer.run_training`.
"""

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from napari.layers import Labels

from ..conventions import CLASS_NAMES
from ..io import InputError
from ..model.registry import user_models_dir
from ..training.common import TrainingConfig, split_subjects
from ..training.data import annotated_folders
from ._inputs import source_images, subject_layer, subject_of
from ._layers import geometry_of, modality_of, subject_from_layers
from ._lesions import edited_since_detection, kind_of, on_same_grid

#: Layer kinds of this plugin that are never annotations.
_NOT_ANNOTATIONS = ("lesion_ids", "locations", "regions")


def annotation_layers(layers) -> list[Labels]:
    """3D Labels layers holding class labels (0 background, 1 CMB, 2 iron deposit) that can teach a model:
    annotations with a lesion painted, label files, the truth of the sample, and detections the rater
    corrected (an unedited detection would only teach the model what it already says; an empty layer, nothing)."""
    return [
        layer
        for layer in layers
        if isinstance(layer, Labels)
        and layer.data.ndim == 3
        and kind_of(layer) not in _NOT_ANNOTATIONS
        and not (layer.metadata.get("deepmir", {}).get("origin") == "detection" and not edited_since_detection(layer))
        and np.any(layer.data)
    ]


def ticked_by_default(layer) -> bool:
    """Whether an annotation layer is used unless the user unticks it: not the sample's truth (a test answer)."""
    return layer.metadata.get("deepmir", {}).get("origin") != "truth"


def _swi_of(labels_layer, layers):
    """The SWI layer of the annotation's subject on its grid; without a subject match, the only SWI on that grid."""
    on_grid = [la for la in source_images(layers) if modality_of(la) == "swi" and on_same_grid(la, labels_layer)]
    same_subject = [la for la in on_grid if subject_of(la) == subject_of(labels_layer)]
    if same_subject:
        return same_subject[0]
    return on_grid[0] if len(on_grid) == 1 else None


def sample_from_layers(labels_layer, layers, *, qsm_units: str = "auto") -> tuple:
    """(Subject, labels on its SWI grid) for an annotation layer, from its subject's image layers.

    The SWI layer must share the annotation's grid (annotations are painted on SWI); QSM and T2 are
    that SWI's subject's and may lie on grids of their own (resampled). Raises InputError naming the
    layer when something is off."""
    swi = _swi_of(labels_layer, layers)
    if swi is None:
        raise InputError(
            labels_layer.name,
            f"no SWI layer of {subject_of(labels_layer)} on this annotation's grid: open the subject's SWI with it",
        )
    labels = geometry_of(labels_layer).from_display(np.asarray(labels_layer.data))
    extra = sorted(set(np.unique(labels).tolist()) - {0, *CLASS_NAMES})
    if extra:
        raise InputError(labels_layer.name, f"label values {extra} are not classes (1 CMB, 2 iron deposit)")
    if not labels.any():
        raise InputError(labels_layer.name, "no lesion is painted in this annotation")
    subject_name = subject_of(swi)
    subject = subject_from_layers(
        swi, subject_layer(layers, subject_name, "qsm"), subject_layer(layers, subject_name, "t2"), qsm_units=qsm_units
    )
    return subject, labels.astype(np.uint8)


def waiting_for(last_step: int | None, config) -> str:
    """What a training run is busy with after the report of ``last_step`` (None: no report yet), in words."""
    validating = bool(config.val_share)
    step = 1 if last_step is None else last_step + 1
    if validating and (last_step is None or step % config.eval_every == 0 or step == config.steps):
        return f"training step {step} or the batch of validation slices under way"
    return f"training step {step}"


def start_message(config, base_name: str) -> str:
    """What a run does first, in words; without validation subjects it says so plainly."""

    n_subjects = len(config.samples) + len(annotated_folders(config.data))
    n_val = len(split_subjects(list(range(n_subjects)), config.val_share, config.seed)[1])
    if not n_val:
        return (
            f"No validation subjects (validation share {config.val_share:g}, {n_subjects} subject(s)): nothing is "
            f"measured and the model after the last step is kept. Training {base_name} on {n_subjects} subject(s)…"
        )
    return f"Measuring {base_name} on {n_val} validation subject(s), then training on {n_subjects - n_val}…"


def stage_after(last_step: int | None, total: int, config, *, verifier: bool = False) -> str:
    """What a run is busy with after the report of ``last_step`` of ``total`` (None: no report yet), in words:
    a step, a validation, or the stages after the last step (saving, the second stage, its validation)."""
    if verifier:
        if last_step is not None and last_step >= total:
            return "the second stage's validation and saving the model"
        return f"second stage (verifier) step {1 if last_step is None else last_step + 1} of {total}"
    if last_step is not None and last_step >= total:
        then = f", then the second stage (verifier): its examples and {config.second_stage_steps} steps"
        return "saving the best model" + (then if config.second_stage_steps else "")
    return waiting_for(last_step, config)


def stop_message(last_step: int | None, total: int, config, *, verifier: bool = False) -> str:
    """What Stop waits for (a validation predicts whole volumes: it can take a while)."""
    if last_step is not None and last_step >= total and not verifier:
        return "Stopping: the last step is done; saving the best model (the second stage is skipped)…"
    stage = stage_after(last_step, total, config, verifier=verifier)
    return f"Stopping: waiting for {stage} to end; the best model is kept…"


def new_model_name(base_name: str) -> str:
    """A readable, unique-enough name for a fine-tuned model, e.g. ``default-ft-20261125-1430``."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", base_name.replace("(shipped)", "")).strip("-").lower() or "model"
    return f"{slug}-ft-{time.strftime('%Y%m%d-%H%M')}"


def free_folder(parent: Path, name: str) -> Path:
    """``parent/name``, or ``parent/name-2`` ... when taken (by a model, or by the checkpoint a stopped run
    kept): a fine-tune never overwrites a model or another run's checkpoint."""
    folder, n = parent / name, 2
    while folder.exists() or folder.with_name(f".{folder.name}.checkpoint").exists():
        folder, n = parent / f"{name}-{n}", n + 1
    return folder


@dataclass
class FinetuneSettings:
    """What the widget collects; :meth:`config` turns it into the trainer's configuration."""

    base: Path
    name: str
    samples: list = field(default_factory=list)
    folders: list = field(default_factory=list)
    steps: int = 300
    lr: float = 3e-4
    device: str = "auto"
    val_share: float = 0.25

    def config(self):
        if not self.samples and not self.folders:
            raise InputError(
                "fine-tuning", "no annotated subject: select an annotation layer or add a saved subject folder"
            )
        return TrainingConfig(
            out=free_folder(user_models_dir(), self.name),
            data=self.folders,
            samples=self.samples,
            base=self.base,
            name=self.name,
            steps=self.steps,
            lr=self.lr,
            device=self.device,
            val_share=self.val_share,
            eval_every=max(10, self.steps // 6),
            batch_size=8,
            command="napari Fine-tune widget",
        )
