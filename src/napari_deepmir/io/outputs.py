"""A participant's detection outputs as one unit: the same files for the CLI, the demo, the cohort and the widget.

Per participant, in one folder (BIDS-derivative names):

- ``<participant>_space-swi_desc-deepmir_dseg.nii.gz``: labels (0/1/2) on the SWI grid with the SWI affine;
- ``<participant>_desc-deepmir_lesions.tsv`` and its ``.json`` column descriptions: the lesion table;
- ``<participant>_space-swi_label-<class>_desc-deepmir_probseg.nii.gz`` (only when asked for): each class's
  probability (0..1, float32) on the SWI grid;
- ``<participant>_space-swi_desc-deepmir_dseg.json``: provenance (model name and sha256, inputs, QSM
  units and how they were known, echo time and field strength from the input's sidecar, warnings, software
  version) and the list of files. It is the **completion marker**: written
  first with ``"Complete": false``, the files next (each atomically), then rewritten with ``"Complete":
  true``. A run killed half-way leaves a marker that says so, so the next run knows the files are its
  own leftovers and replaces them; a set without a marker is never touched unless ``overwrite``.

``dseg.tsv`` (the label lookup) goes beside them for a single subject, at the dataset root for a cohort.
"""

import datetime
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..conventions import CLASS_NAMES
from .derivatives import dseg_lookup_text, write_dseg_lookup, write_json, write_table_with_sidecar
from .destinations import check_destinations, same_text
from .errors import InputError
from .jsonfile import read_json
from .nifti import save_labels, save_nifti

LOOKUP = "dseg.tsv"


@dataclass(frozen=True)
class OutputSet:
    """The output paths of one participant in ``folder``."""

    folder: Path
    participant: str
    probabilities: bool = False  # whether the set has the class probability maps

    @property
    def labels(self) -> Path:
        return self.folder / f"{self.participant}_space-swi_desc-deepmir_dseg.nii.gz"

    @property
    def marker(self) -> Path:
        """The provenance sidecar of the labels, written last (see the module docstring)."""
        return self.folder / f"{self.participant}_space-swi_desc-deepmir_dseg.json"

    @property
    def lesions(self) -> Path:
        return self.folder / f"{self.participant}_desc-deepmir_lesions.tsv"

    @property
    def lesions_sidecar(self) -> Path:
        return self.lesions.with_suffix(".json")

    def probability(self, class_name: str) -> Path:
        """The probability map of a class (``cmb``, ``iron``)."""
        return self.folder / f"{self.participant}_space-swi_label-{class_name}_desc-deepmir_probseg.nii.gz"

    @property
    def files(self) -> tuple[Path, ...]:
        probabilities = tuple(self.probability(name) for name in CLASS_NAMES.values()) if self.probabilities else ()
        return (self.labels, *probabilities, self.lesions, self.lesions_sidecar, self.marker)

    def provenance(self) -> dict | None:
        """The marker's content, or None when there is none (or it is unreadable)."""
        try:
            content = read_json(self.marker)
        except InputError:
            return None
        return content if isinstance(content, dict) else None

    def is_complete(self) -> bool:
        """True when a finished run wrote every file of this set."""
        content = self.provenance()
        return bool(content and content.get("Complete") is True and all(p.exists() for p in self.files))

    def existing(self) -> list[Path]:
        return [p for p in self.files if p.exists()]


def check_can_write(outputs: OutputSet, *, overwrite: bool, lookup: bool = True) -> None:
    """Refuse (InputError) to replace a finished output set unless ``overwrite``, and files of these names that
    no run of ours left (no marker) in any case unless ``overwrite``; leftovers of an interrupted run pass.
    ``lookup``: the set's folder also gets ``dseg.tsv``, replaced only when it holds our lookup. The rest of the
    rule (links, folders, a folder that cannot be written) is :func:`.destinations.check_destinations`'s."""
    provenance = outputs.provenance()
    if not overwrite and provenance is not None and provenance.get("Complete") is not False and outputs.existing():
        made = provenance.get("GeneratedBy", {})
        raise InputError(
            outputs.folder,
            f"outputs of {outputs.participant} already exist (model {made.get('Model', '?')}, "
            f"{provenance.get('Date', '?')}); "
            "pass --overwrite to replace them",
        )
    interrupted = provenance is not None and provenance.get("Complete") is False  # its files are our leftovers
    lookup_file = outputs.folder / LOOKUP
    is_lookup = same_text(dseg_lookup_text())
    check_destinations(
        [*outputs.files, *([lookup_file] if lookup else [])],
        overwrite=overwrite,
        ours=lambda path: is_lookup(path) if path == lookup_file else interrupted,
    )


def write_outputs(
    outputs: OutputSet,
    labels: np.ndarray,
    affine: np.ndarray,
    table: pd.DataFrame,
    columns: dict,
    provenance: dict,
    *,
    overwrite: bool = False,
    lookup: bool = True,
    probabilities: np.ndarray | None = None,
) -> OutputSet:
    """Write one participant's output set as a unit (see the module docstring); ``lookup`` adds ``dseg.tsv``;
    ``probabilities`` (3, *grid), needed when the set has probability maps."""
    if outputs.probabilities and probabilities is None:
        raise ValueError("this output set has probability maps: give the probabilities")
    check_can_write(outputs, overwrite=overwrite, lookup=lookup)
    record = {
        "Description": "Cerebral microbleeds (1) and iron deposits (2) found by napari-deepmir",
        **provenance,
        "GeneratedBy": {"Name": "napari-deepmir", "Version": __version__, **provenance.get("GeneratedBy", {})},
        "Date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "Files": [p.name for p in outputs.files],
    }
    try:
        write_json(outputs.marker, {**record, "Complete": False})
        save_labels(outputs.labels, labels, affine)
        if outputs.probabilities:
            for value, name in CLASS_NAMES.items():
                save_nifti(outputs.probability(name), np.asarray(probabilities[value], np.float32), affine)
        write_table_with_sidecar(outputs.lesions, table, columns)
        if lookup:
            write_dseg_lookup(outputs.folder / LOOKUP)
        write_json(outputs.marker, {**record, "Complete": True})
    except OSError as error:  # a full disk, a folder gone read-only: say so in one line; the marker says incomplete
        raise InputError(
            outputs.folder,
            f"writing the outputs of {outputs.participant} failed ({error.strerror or error}); "
            "what was written is marked incomplete and the next run replaces it",
        ) from None
    return outputs


def output_folder_of(out_dir: str | Path, participant: str) -> Path:
    """The BIDS-derivative folder of a participant (``sub-X[_ses-Y]``) under a dataset's ``out_dir``."""
    subject, _, session = participant.partition("_")
    return Path(out_dir, subject, session, "anat") if session else Path(out_dir, subject, "anat")


def dataset_outputs(out_dir: str | Path, participant: str) -> OutputSet:
    """A participant's output set inside a derivatives dataset."""
    return OutputSet(output_folder_of(out_dir, participant), participant)
