"""Detection of one subject, end to end: predict -> measure -> write, the one path every front end takes.

``deepmir predict``, ``deepmir demo``, ``deepmir cohort`` and the Detect widget all call
:func:`iter_detect` (or :func:`detect`) and :func:`write_detection`, so their outputs have the same
files, the same table columns (every column of :data:`~napari_deepmir.lesions.measure.COLUMNS`, empty
where an input such as a location map is missing) and the same provenance.
"""

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .io import Subject
from .io.outputs import OutputSet, write_outputs
from .progress import run_to_end


@dataclass
class DetectionResult:
    """A subject's prediction, measured: labels and probabilities on the SWI grid, the lesion table, the
    lesion-id map (one value per lesion, as in the table), the model's provenance (with why that model ran,
    ``ModelChoice``, when it was chosen by name or by the subject's inputs), the warnings: the subject's
    own and those of an acquisition outside the model's training ranges, and the detections the protocol's
    rules rejected, each with its reason (:func:`.lesions.rules.rejected_by_rules`)."""

    subject: Subject
    labels: np.ndarray
    probabilities: np.ndarray
    table: pd.DataFrame
    lesion_ids: np.ndarray
    model: dict
    warnings: list[str] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        """'7 CMBs, 2 iron deposits'."""
        from .lesions.measure import count_summary

        return count_summary(self.table)


def full_table(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with every column of the lesion table in its documented order (missing ones empty)."""
    from .lesions.measure import COLUMNS

    order = list(COLUMNS) + [c for c in table.columns if c not in COLUMNS]
    return table.reindex(columns=order)


def model_provenance(loaded, choice=None) -> dict:
    """Name, folder and sha256 of a loaded model (its identity in every output), and why it ran when
    ``choice`` (a :class:`~napari_deepmir.model.registry.ModelChoice`) says."""
    from .model.files import model_sha256

    provenance = {
        "Model": loaded.card.name,
        "ModelPath": None if loaded.path is None else str(loaded.path),
        "ModelSha256": model_sha256(loaded.path),
        "ModelInputs": list(loaded.card.modalities),
    }
    if choice is not None:
        provenance["ModelChoice"] = choice.reason
    return provenance


def choose_subject_model(subject: Subject, model=None):
    """(model to load, its ModelChoice or None): ``model`` as given when it is already loaded (a
    LoadedModel), else the :func:`~napari_deepmir.model.registry.choose_model` for the subject's inputs."""
    from .model.files import LoadedModel
    from .model.registry import ModelChoice, choose_model

    if isinstance(model, LoadedModel):
        return model, None
    choice = model if isinstance(model, ModelChoice) else choose_model(subject.available, model)
    return choice.path, choice


def iter_detect(
    subject: Subject,
    model=None,
    *,
    device: str = "auto",
    locations: np.ndarray | None = None,
    regions: np.ndarray | None = None,
    bf16: bool = False,
) -> Generator[tuple[int, int], None, DetectionResult]:
    """Predict and measure ``subject``; yields ``(done, total)`` slice batches (closing it cancels) and returns
    a :class:`DetectionResult`. ``model``: None (the shipped model for the subject's inputs), a model
    folder or name, a ModelChoice or a LoadedModel; ``locations`` / ``regions``: a location / region map on
    the SWI grid for the table's ``location`` / ``region`` and ``hemisphere`` columns."""
    from .inference import iter_predict, loaded_model, select_device
    from .lesions.measure import label_lesions, measure_lesions

    model, choice = choose_subject_model(subject, model)
    torch_device = select_device(device) if isinstance(device, str) else device
    loaded = loaded_model(model, torch_device)
    prediction = yield from iter_predict(subject, loaded, device=torch_device, return_probabilities=True, bf16=bf16)
    table = measure_lesions(
        prediction.labels, subject, probabilities=prediction.probabilities, locations=locations, regions=regions
    )
    lesion_ids, _ = label_lesions(prediction.labels)
    provenance = model_provenance(loaded, choice) | {"Device": str(torch_device)}
    warnings = [*subject.warnings, *loaded.card.range_warnings(subject.scan)]
    return DetectionResult(
        subject,
        prediction.labels,
        prediction.probabilities,
        full_table(table),
        lesion_ids,
        provenance,
        warnings,
        prediction.rejected,
    )


def detect(
    subject: Subject, model=None, *, progress: Callable[[int, int], None] | None = None, **options
) -> DetectionResult:
    """Run :func:`iter_detect` to the end, reporting ``progress(done, total)`` if given."""
    return run_to_end(iter_detect(subject, model, **options), progress)


def write_detection(
    result: DetectionResult, outputs: OutputSet, *, overwrite: bool = False, lookup: bool = True
) -> OutputSet:
    """Write a detection as one output set (labels, lesion table + sidecar, provenance; see :mod:`..io.outputs`)."""
    from .lesions.measure import COLUMNS

    subject = result.subject
    provenance = {
        "Sources": [str(Path(p)) for p in subject.paths.values()],
        "QsmUnits": subject.qsm_units,
        "QsmUnitsSource": subject.qsm_units_source,
        "EchoTime": subject.scan.get("echo_time_s"),
        "MagneticFieldStrength": subject.scan.get("field_strength_t"),
        "Warnings": list(dict.fromkeys([*subject.warnings, *result.warnings])),
        "Alignment": {modality: alignment.provenance() for modality, alignment in subject.alignments.items()},
        "BrainMask": subject.brain_mask_source or "estimated",
        "GeneratedBy": result.model,
        "RejectedByRules": result.rejected,
    }
    return write_outputs(
        outputs,
        result.labels,
        subject.affine,
        result.table,
        COLUMNS,
        provenance,
        overwrite=overwrite,
        lookup=lookup,
        probabilities=result.probabilities,
    )
