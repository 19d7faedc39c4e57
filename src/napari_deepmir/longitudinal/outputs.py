"""A comparison's outputs as one unit, written like a detection's output set (:mod:`..io.outputs`).

In the output folder, per participant ``<p>``:

- ``<p>_desc-longitudinal_changes.tsv`` and its ``.json`` column descriptions: the change table;
- ``<p>_desc-longitudinal_grade.json``: the ARIA-H grade with its rule and source, the registration, each
  session's sources and labels, warnings and software version. It is the completion marker: written first with
  ``"Complete": false``, then the table, then rewritten with ``"Complete": true``; a finished set is replaced
  only with ``overwrite``, files of these names no run of ours wrote never.

When the sessions were detected here, each session's detection output set (``<p>_ses-X_...``) goes beside it.
"""

import datetime
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..io.derivatives import write_json, write_table_with_sidecar
from ..io.errors import InputError
from ..io.outputs import OutputSet, check_can_write
from .changes import CHANGE_COLUMNS
from .compare import SessionComparison
from .difference import evidence_record


@dataclass(frozen=True)
class ChangeSet(OutputSet):
    """The output paths of one participant's comparison in ``folder``."""

    @property
    def marker(self) -> Path:
        return self.folder / f"{self.participant}_desc-longitudinal_grade.json"

    @property
    def changes(self) -> Path:
        return self.folder / f"{self.participant}_desc-longitudinal_changes.tsv"

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.changes, self.changes.with_suffix(".json"), self.marker)


def session_outputs(folder: str | Path, participant: str, session: str) -> OutputSet:
    """The detection output set of one session of a comparison."""
    return OutputSet(Path(folder), f"{participant}_{session}")


def _lesion_source(comparison: SessionComparison) -> str:
    """The model that found the sessions' lesions, or that label maps were given (what an overwrite refusal names)."""
    models = {s.source.get("Model", "given label maps") for s in (comparison.baseline, comparison.followup)}
    return " + ".join(sorted(models))


def comparison_record(comparison: SessionComparison) -> dict:
    """What the marker holds (without the completion flag)."""
    sessions = {}
    for role, session in (("Baseline", comparison.baseline), ("Followup", comparison.followup)):
        sessions[role] = {
            "Session": session.label,
            "Sources": [str(Path(p)) for p in session.subject.paths.values()],
            "Lesions": session.source,
        }
    counts = comparison.changes.groupby(["class", "status"]).size()
    return {
        "Description": "New, persisting, grown and resolved microbleeds and iron deposits between two sessions",
        "ARIA-H": comparison.grade.record(),
        "Counts": {f"{c}_{s}": int(n) for (c, s), n in counts.items()},
        "Sessions": sessions,
        "Registration": comparison.registration.provenance(),
        "DifferenceEvidence": evidence_record(comparison.changes),
        "Warnings": list(dict.fromkeys(comparison.warnings)),
        **({} if comparison.score is None else {"TruthScore": comparison.score}),
        "GeneratedBy": {"Name": "napari-deepmir", "Version": __version__, "Model": _lesion_source(comparison)},
        "Date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def write_comparison(comparison: SessionComparison, outputs: ChangeSet, *, overwrite: bool = False) -> ChangeSet:
    """Write the change table and the grade marker as a unit (see the module doc)."""
    check_can_write(outputs, overwrite=overwrite)
    record = {**comparison_record(comparison), "Files": [p.name for p in outputs.files]}
    try:
        write_json(outputs.marker, {**record, "Complete": False})
        write_table_with_sidecar(outputs.changes, comparison.changes, CHANGE_COLUMNS)
        write_json(outputs.marker, {**record, "Complete": True})
    except OSError as error:
        raise InputError(
            outputs.folder,
            f"writing the comparison of {outputs.participant} failed ({error.strerror or error}); "
            "what was written is marked incomplete and the next run replaces it",
        ) from None
    return outputs
