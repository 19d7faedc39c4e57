"""Detection of one subject, end to end, the one path every front end takes:

    load model -> predict -> post-process -> verify -> find missed lesions -> rules -> measure -> write

each stage a function of the module that owns it: :mod:`.inference` (the model, the U-Net's probabilities),
:mod:`..lesions.postprocess` (probabilities to lesions), :mod:`.verification` (the second stage),
:mod:`..lesions.rules` (the protocol's rejections), :mod:`..lesions.measure` (the lesion table) and
:mod:`..io.outputs` (the output set). ``deepmir predict``, ``deepmir demo``, ``deepmir cohort`` and the Detect
widget all call :func:`iter_detect` (or :func:`detect`) and :func:`write_detection`, so their outputs have the
same files, the same table columns (every column of :data:`~napari_deepmir.lesions.measure.COLUMNS`, empty
where an input such as a location map is missing) and the same provenance.
"""

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ..conventions import CLASS_NAMES
from ..io import Subject
from ..io.outputs import OutputSet, write_outputs
from ..lesions.components import class_components
from ..lesions.measure import COLUMNS, Lesions, count_summary, find_lesions, measure_lesions
from ..lesions.postprocess import apply_postprocess
from ..lesions.rules import rejected_by_rules
from ..model.files import LoadedModel
from ..model.registry import ModelChoice
from ..progress import run_to_end
from .inference import iter_probabilities, load_detection_model, prepare_input, select_device
from .verification import find_missed_lesions, verify_lesions


@dataclass
class DetectionResult:
    """A subject's detection: labels (uint8 0/1/2) and class probabilities (3, X, Y, Z) on the SWI grid, the
    model's provenance (with why that model ran, ``ModelChoice``, when it was chosen by name or by the
    subject's inputs), the warnings: the subject's own and those of an acquisition outside the model's
    training ranges, the detections the protocol's rules rejected, each with its reason
    (:func:`..lesions.rules.rejected_by_rules`), and, once measured, the lesion table and the lesion-id map
    (one value per lesion, as in the table)."""

    subject: Subject
    labels: np.ndarray
    probabilities: np.ndarray | None
    model: dict
    warnings: list[str] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    table: pd.DataFrame | None = None
    lesion_ids: np.ndarray | None = None

    @cached_property
    def counts(self) -> dict[str, int]:
        """Number of lesions per class name."""
        return {name: class_components(self.labels, value)[1] for value, name in CLASS_NAMES.items()}

    def summary(self) -> str:
        """'7 CMBs, 2 iron deposits'."""
        if self.table is not None:
            return count_summary(self.table)
        cmb, iron = self.counts["cmb"], self.counts["iron"]
        return f"{cmb} CMB{'s' if cmb != 1 else ''}, {iron} iron deposit{'s' if iron != 1 else ''}"


def full_table(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with every column of the lesion table in its documented order (missing ones empty)."""
    order = list(COLUMNS) + [c for c in table.columns if c not in COLUMNS]
    return table.reindex(columns=order)


def model_provenance(loaded: LoadedModel, choice: ModelChoice | None = None) -> dict:
    """Name, folder and sha256 of a loaded model (its identity in every output), and why it ran when
    ``choice`` says."""
    provenance = {
        "Model": loaded.card.name,
        "ModelPath": None if loaded.path is None else str(loaded.path),
        "ModelSha256": loaded.sha256,
        "ModelInputs": list(loaded.card.modalities),
    }
    if choice is not None:
        provenance["ModelChoice"] = choice.reason
    return provenance


def iter_detect(
    subject: Subject,
    model=None,
    *,
    device: str = "auto",
    locations: np.ndarray | None = None,
    regions: np.ndarray | None = None,
    bf16: bool = False,
    batch_size: int = 8,
    rules: bool = True,
    measure: bool = True,
) -> Generator[tuple[int, int], None, DetectionResult]:
    """Detect lesions in ``subject``; yields ``(done, total)`` slice batches (closing it cancels) and returns
    a :class:`DetectionResult`. ``model``: see :func:`.inference.load_detection_model`; ``locations`` /
    ``regions``: a location / region map on the SWI grid for the table's ``location`` / ``region`` and
    ``hemisphere`` columns; ``bf16`` runs the networks under bfloat16 autocast; ``rules=False`` keeps what the
    protocol's rules would reject (for benchmarks that measure the rules); ``measure=False`` stops before
    the lesion table."""
    torch_device = select_device(device) if isinstance(device, str) else device
    loaded, choice = load_detection_model(subject, model, torch_device)
    prepared = prepare_input(subject, loaded.card)
    probabilities = yield from iter_probabilities(prepared, loaded, batch_size=batch_size, bf16=bf16)
    labels = apply_postprocess(probabilities, subject, loaded.card)
    verified = verify_lesions(labels, prepared, loaded, bf16=bf16)
    labels = find_missed_lesions(verified, labels, subject, prepared, loaded, bf16=bf16)
    rejected, lesions = [], None
    if rules:
        labels, rejected, lesions = rejected_by_rules(labels, subject)
    result = DetectionResult(
        subject,
        labels,
        probabilities,
        model_provenance(loaded, choice) | {"Device": str(torch_device)},
        [*subject.warnings, *loaded.card.range_warnings(subject.scan)],
        rejected,
    )
    if measure:
        measure_detection(result, lesions, locations=locations, regions=regions)
    return result


def measure_detection(
    result: DetectionResult,
    lesions: Lesions | None = None,
    *,
    locations: np.ndarray | None = None,
    regions: np.ndarray | None = None,
) -> None:
    """Give ``result`` its lesion table and lesion-id map; ``lesions``: its labels' lesions already numbered and
    measured (by the rules), measured here when None."""
    subject = result.subject
    if lesions is None:
        lesions = find_lesions(result.labels, subject.affine, swi=subject.swi, qsm=subject.qsm)
    table = measure_lesions(
        result.labels,
        subject,
        lesions=lesions,
        probabilities=result.probabilities,
        locations=locations,
        regions=regions,
    )
    result.table, result.lesion_ids = full_table(table), lesions.ids


def detect(
    subject: Subject, model=None, *, progress: Callable[[int, int], None] | None = None, **options
) -> DetectionResult:
    """Run :func:`iter_detect` to the end, reporting ``progress(done, total)`` if given."""
    return run_to_end(iter_detect(subject, model, **options), progress)


def predict_subject(
    subject: Subject,
    model=None,
    *,
    return_probabilities: bool = False,
    progress: Callable[[int, int], None] | None = None,
    **options,
) -> DetectionResult:
    """The labels of :func:`detect` without the lesion table (``measure=False``); the probabilities only when
    ``return_probabilities`` (a training loop keeps many predictions)."""
    result = detect(subject, model, progress=progress, measure=False, **options)
    if not return_probabilities:
        result.probabilities = None
    return result


def write_detection(
    result: DetectionResult, outputs: OutputSet, *, overwrite: bool = False, lookup: bool = True
) -> OutputSet:
    """Write a measured detection as one output set (labels, lesion table + sidecar, provenance; see
    :mod:`..io.outputs`)."""
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
