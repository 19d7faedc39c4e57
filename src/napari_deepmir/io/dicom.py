"""DICOM import: a folder of DICOM series -> a BIDS folder (``sub-X/ses-N/anat/``) the rest of the tool reads.

The headers are read first (:mod:`.dicom_headers`): files are grouped by person and series, and series that
would merge two people, hold control characters or miss a slice are refused before conversion. Each
remaining series is converted on its own by dcm2niix (:mod:`.dicom_convert`; one converted in part is
refused) and given a role from its sidecar (:func:`.dicom_roles.series_role`): T2-weighted, the scanner's
SWI, or the magnitude or phase of the gradient echo it was made from. Participants come from PatientID (or
``subject``); sessions are numbered ``1``, ``2``... per participant in acquisition order (or ``session``).
Nothing is guessed: series of no known role, and a role filled by more than one series of a participant,
are listed in the report and not imported. Sidecars are de-identified (:mod:`.deidentify`). Nothing in the
BIDS folder is ever replaced: when any target exists the import refuses before writing anything.
"""

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_path
from .bids import raw_path
from .deidentify import copy_nifti_without_time, deidentified
from .derivatives import write_json
from .dicom_convert import convert_series
from .dicom_headers import (
    CONTROL_CHARACTERS,
    DicomSeries,
    bids_label,
    control_characters,
    identity_conflicts,
    is_dicom_file,
    read_series,
    slice_gap,
)
from .dicom_roles import series_role
from .errors import InputError

__all__ = ["ImportReport", "Series", "bids_label", "holds_dicom", "import_dicom", "series_role"]

#: Roles of imported series; each is written as ``<participant>_<BIDS suffix>.nii.gz`` (SWI: ``_rec-swi_T2starw``).
ROLES = ("t2", "swi", "magnitude", "phase")
#: How many files of a folder are looked at to tell whether it holds DICOM.
_FILES_SAMPLED = 20


@dataclass
class Series:
    """One series: its NIfTI and sidecar (in the conversion folder; no NIfTI when it was refused before or in
    conversion), the DICOM series it came from, its role and participant, and why it is left out."""

    nifti: Path | None
    sidecar: dict
    source: DicomSeries | None = None
    role: str | None = None
    reason: str = ""
    participant: tuple[str, str | None] | None = None  # (subject label, session label or None)

    @property
    def title(self) -> str:
        """'series 5 "Pha_Images" of P01', how the report names a series."""
        number = self.sidecar.get("SeriesNumber", "?")
        described = CONTROL_CHARACTERS.sub(
            "?", self.sidecar.get("SeriesDescription") or self.sidecar.get("ProtocolName", "")
        )
        whose = f" of {self.source.person.patient_id}" if self.source is not None else ""
        return f'series {number} "{described}"{whose}'


@dataclass
class ImportReport:
    """What an import did: files written per series, the series left out with the reason, and the files
    that could not be read as DICOM."""

    bids_root: Path
    imported: list[tuple[Series, Path]] = field(default_factory=list)
    left_out: list[Series] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def participant_folders(self) -> list[Path]:
        """The ``sub-X`` or ``sub-X/ses-Y`` folders that received files."""
        return sorted({target.parent.parent for _, target in self.imported})

    def lines(self) -> list[str]:
        """The report in words, one line per series (and per unreadable file)."""
        lines = [f"imported {s.title} as {t.relative_to(self.bids_root)}{_copies(s)}" for s, t in self.imported]
        lines += [f"left out {s.title}: {s.reason}" for s in self.left_out]
        return lines + [f"skipped {line}" for line in self.unreadable]

    def summary(self) -> str:
        """One sentence with the counts: what was written and what was not."""
        skipped = f"; {len(self.unreadable)} file(s) not read as DICOM images" if self.unreadable else ""
        return (
            f"{len(self.imported)} series imported into {len(self.participant_folders)} subject folder(s) of "
            f"{self.bids_root}; {len(self.left_out)} left out{skipped}"
        )


def _copies(series: Series) -> str:
    copies = series.source.duplicates if series.source is not None else 0
    return f" ({copies} copies of images already in the series skipped)" if copies else ""


def holds_dicom(folder: str | Path) -> bool:
    """Whether ``folder`` (or a folder below it) holds DICOM files; looks at a few files only."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    sampled = 0
    for path in folder.rglob("*"):
        if path.is_file():
            if is_dicom_file(path):
                return True
            sampled += 1
            if sampled >= _FILES_SAMPLED:
                return False
    return False


def convert(dicom_dir: str | Path, work_dir: str | Path, *, subject: str | None = None) -> tuple[list[Series], list]:
    """Read, check and convert every series under ``dicom_dir`` (one dcm2niix run per series, in ``work_dir``):
    one :class:`Series` per NIfTI made, and one per series refused (with its reason); and the files skipped."""
    dicom_dir, work_dir = Path(dicom_dir), Path(work_dir)
    if not dicom_dir.is_dir():
        raise InputError(dicom_dir, "DICOM folder not found")
    found, unreadable = read_series(dicom_dir)
    if not found:
        raise InputError(dicom_dir, "no DICOM files found" + (f" ({unreadable[0]})" if unreadable else ""))
    conflicts = identity_conflicts(found, subject)
    series = []
    for index, source in enumerate(found):
        refused = conflicts.get(index) or control_characters(source) or slice_gap(source)
        if not refused:
            conversion = convert_series(source.files, work_dir / f"{index:05d}")
            refused = conversion.refused
        if refused:
            series.append(Series(None, source.describe(), source, reason=refused))
            continue
        for nifti, sidecar in conversion.outputs:
            if sidecar is None:
                why = f"dcm2niix wrote a sidecar that is not valid JSON for {source.files[0]} (check its text fields)"
                series.append(Series(None, source.describe(), source, reason=why))
            else:
                series.append(Series(nifti, sidecar, source))
    return series, unreadable


def session_numbers(studies: dict[str, str]) -> dict[str, str | None]:
    """Session labels ``1``, ``2``... of one participant's studies (StudyInstanceUID -> when it started,
    ``YYYYMMDDhhmmss`` or '' when undated) in acquisition order; a study without a date joins the only dated
    one (or is session 1 when it is the only study); None where it cannot be placed."""
    dated = sorted((started, uid) for uid, started in studies.items() if started)
    labels: dict[str, str | None] = {uid: str(number) for number, (_, uid) in enumerate(dated, 1)}
    undated = [uid for uid, started in studies.items() if not started]
    for uid in undated:
        labels[uid] = "1" if len(dated) == 1 or len(studies) == 1 else None
    return labels


def assign_participants(series: list[Series], *, subject: str | None = None, session: str | None = None) -> None:
    """Set each series' participant: ``subject`` (else its PatientID) and ``session`` (else its number in the
    participant's acquisition order, :func:`session_numbers`; ``""`` for no session level), as BIDS labels.
    Series without one are left out, with the reason."""
    studies: dict[str, dict[str, str]] = {}
    waiting = [s for s in series if not s.reason]
    for s in waiting:
        label = bids_label(subject if subject is not None else s.source.person.patient_id)
        if not label:
            s.reason = "no PatientID with letters or digits: give --subject"
            continue
        s.participant = (label, None)
        started = studies.setdefault(label, {}).setdefault(s.source.study_uid, s.source.started)
        studies[label][s.source.study_uid] = min(filter(None, (started, s.source.started)), default="")
    numbers = {label: session_numbers(found) for label, found in studies.items()}
    for s in waiting:
        if s.participant is None:
            continue
        label = s.participant[0]
        visit = bids_label(session) if session is not None else numbers[label][s.source.study_uid]
        if visit is None:
            s.participant = None
            s.reason = (
                f"its study has no date, and sub-{label} has {len(studies[label])} studies: the session it belongs to "
                "is unknown; import it with --session"
            )
        else:
            s.participant = (label, visit or None)


def target_path(bids_root: Path, participant: tuple[str, str | None], role: str) -> Path:
    """``bids_root/sub-X[/ses-Y]/anat/sub-X[_ses-Y]_<suffix>.nii.gz`` (names from :func:`.bids.raw_path`)."""
    subject, session = participant
    return raw_path(bids_root, subject, session, role)


def plan_import(series: list[Series], bids_root: Path) -> ImportReport:
    """Roles and targets for every series; refused series, unknown roles and roles claimed twice for a
    participant are left out."""
    report = ImportReport(bids_root)
    claims: dict[tuple, list[Series]] = {}
    for s in series:
        if s.participant is None:
            report.left_out.append(s)
            continue
        s.role, why = series_role(s.sidecar)
        if s.role is None:
            s.reason = why
            report.left_out.append(s)
        else:
            claims.setdefault((s.participant, s.role), []).append(s)
    for (participant, role), claimants in claims.items():
        if len(claimants) == 1:
            report.imported.append((claimants[0], target_path(bids_root, participant, role)))
            continue
        others = ", ".join(c.title for c in claimants)
        for s in claimants:
            s.reason = f"ambiguous: {len(claimants)} {role} series for sub-{participant[0]} ({others}); none imported"
            report.left_out.append(s)
    report.imported.sort(key=lambda item: str(item[1]))
    return report


def import_dicom(
    dicom_dir: str | Path,
    bids_root: str | Path,
    *,
    subject: str | None = None,
    session: str | None = None,
    keep_dates: bool = False,
) -> ImportReport:
    """Convert ``dicom_dir`` and sort its series into the BIDS folder ``bids_root`` (created if needed).

    ``subject`` / ``session`` replace PatientID / the session number (``session=""``: no session level).
    Sidecars are de-identified (:func:`.deidentify.deidentified`; ``keep_dates`` keeps dates and times).
    Refuses (InputError) before writing anything when a target file already exists."""
    bids_root = Path(bids_root)
    if bids_root.exists() and not bids_root.is_dir():
        raise InputError(bids_root, "exists and is not a folder; give a folder for the BIDS dataset")
    existing_parent = next(p for p in (bids_root, *bids_root.parents) if p.exists())
    if not os.access(existing_parent, os.W_OK | os.X_OK):
        raise InputError(existing_parent, "is not writable; nothing was converted")
    with tempfile.TemporaryDirectory(prefix="deepmir-dcm2niix-") as work_dir:
        series, unreadable = convert(dicom_dir, work_dir, subject=subject)
        assign_participants(series, subject=subject, session=session)
        report = plan_import(series, bids_root)
        report.unreadable = unreadable
        existing = [target for _, target in report.imported if target.exists() or _sidecar_of(target).exists()]
        if existing:
            raise InputError(
                existing[0],
                f"already exists ({len(existing)} of the files to import do); deepmir import never replaces files: "
                "import into a new folder, give another --session, or move those files away first",
            )
        for s, target in report.imported:
            with atomic_path(target) as temporary:
                copy_nifti_without_time(s.nifti, temporary)
            write_json(_sidecar_of(target), deidentified(s.sidecar, keep_dates=keep_dates))
    description = bids_root / "dataset_description.json"
    if report.imported and not description.exists():
        write_json(description, {"Name": "Imported by deepmir import", "BIDSVersion": "1.9.0", "DatasetType": "raw"})
    return report


def _sidecar_of(nifti: Path) -> Path:
    return nifti.with_name(nifti.name[: -len(".nii.gz")] + ".json")
