"""DICOM import: a folder of DICOM series -> a BIDS folder (``sub-X[/ses-Y]/anat/``) the rest of the tool reads.

dcm2niix (the ``dcm2niix`` package ships the binary) converts every series to NIfTI with a BIDS JSON
sidecar; each series is then given a role from its sidecar (:func:`series_role`): T2-weighted,
the scanner's SWI, or the magnitude or phase of the gradient echo it was made from. Participants
come from PatientID (or ``subject``) and sessions from the scan date (or ``session``), as BIDS labels.
Nothing is guessed: series of no known role, and a role filled by more than one series of a
participant, are listed in the report and not imported. Nothing in the BIDS folder is ever replaced:
when any target exists the import refuses before writing anything.
"""

import datetime
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_path
from .bids import raw_path
from .derivatives import write_json
from .errors import InputError

#: Roles of imported series; each is written as ``<participant>_<BIDS suffix>.nii.gz`` (SWI: ``_rec-swi_T2starw``).
ROLES = ("t2", "swi", "magnitude", "phase")
#: Sidecar fields that identify the person; dropped from the BIDS sidecars written.
IDENTIFYING_FIELDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "PatientWeight")
#: Bytes at which a DICOM file (Part 10) says ``DICM``.
_PREAMBLE = 128
#: How many files of a folder are looked at to tell whether it holds DICOM.
_FILES_SAMPLED = 20
_NOT_LABEL = re.compile(r"[^A-Za-z0-9]")


@dataclass
class Series:
    """One converted series: its NIfTI and sidecar (in the conversion folder), role and participant."""

    nifti: Path
    sidecar: dict
    role: str | None = None
    reason: str = ""
    participant: tuple[str, str | None] | None = None  # (subject label, session label or None)

    @property
    def title(self) -> str:
        """'series 5 "Pha_Images"', how the report names a series."""
        number = self.sidecar.get("SeriesNumber", "?")
        return f'series {number} "{self.sidecar.get("SeriesDescription") or self.sidecar.get("ProtocolName", "")}"'


@dataclass
class ImportReport:
    """What an import did: files written per series, and the series left out with the reason."""

    bids_root: Path
    imported: list[tuple[Series, Path]] = field(default_factory=list)
    left_out: list[Series] = field(default_factory=list)

    @property
    def participant_folders(self) -> list[Path]:
        """The ``sub-X`` or ``sub-X/ses-Y`` folders that received files."""
        return sorted({target.parent.parent for _, target in self.imported})

    def lines(self) -> list[str]:
        """The report in words, one line per series."""
        lines = [f"imported {s.title} as {t.relative_to(self.bids_root)}" for s, t in self.imported]
        return lines + [f"left out {s.title}: {s.reason}" for s in self.left_out]


def dcm2niix_binary() -> str:
    """The path of the dcm2niix executable: the ``dcm2niix`` package's, else one on PATH."""
    try:
        import dcm2niix
    except ImportError:
        found = shutil.which("dcm2niix")
        if found is None:
            raise InputError(None, "dcm2niix is not installed: pip install dcm2niix") from None
        return found
    return dcm2niix.bin


def is_dicom_file(path: Path) -> bool:
    """Whether ``path`` is a DICOM Part 10 file (``DICM`` after the 128-byte preamble)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(_PREAMBLE)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


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


def bids_label(text: str) -> str:
    """``text`` as a BIDS label (letters and digits only): ``'P 01/a'`` -> ``'P01a'``."""
    return _NOT_LABEL.sub("", str(text))


def convert(dicom_dir: str | Path, work_dir: str | Path) -> list[Series]:
    """Convert every series under ``dicom_dir`` with dcm2niix into ``work_dir``; one :class:`Series` per NIfTI."""
    dicom_dir, work_dir = Path(dicom_dir), Path(work_dir)
    if not dicom_dir.is_dir():
        raise InputError(dicom_dir, "DICOM folder not found")
    command = [dcm2niix_binary(), "-b", "y", "-ba", "n", "-z", "y", "-f", "%s_%j", "-o", str(work_dir), str(dicom_dir)]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    found = sorted(work_dir.glob("*.nii.gz"))
    if done.returncode != 0 and not found:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no message"]
        raise InputError(dicom_dir, f"dcm2niix found no convertible DICOM series ({last[0]})")
    series = []
    for nifti in found:
        sidecar_path = nifti.with_name(nifti.name[: -len(".nii.gz")] + ".json")
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8")) if sidecar_path.exists() else {}
        series.append(Series(nifti, sidecar))
    return series


def series_role(sidecar: dict) -> tuple[str | None, str]:
    """The role of a series from its BIDS sidecar (``t2``, ``swi``, ``magnitude``, ``phase``), or None and why.

    Rules, in order: localizers and projections (minimum/maximum intensity) are left out; a phase image
    (``P``/``PHASE`` in ImageType) is ``phase``; ``SWI`` in ImageType is ``swi``; FLAIR is left out; "T2" (not
    T2*) in the description or protocol, or a spin echo with TE >= 60 ms, is ``t2``; an original gradient-echo
    magnitude image (``ORIGINAL`` and ``M`` in ImageType) is ``magnitude`` (even in a protocol named SWI);
    another image described as SWI is ``swi``. Anything else is left out."""
    image_type = {str(v).upper() for v in sidecar.get("ImageType", [])}
    words = f"{sidecar.get('SeriesDescription', '')} {sidecar.get('ProtocolName', '')}".lower()
    sequence = str(sidecar.get("ScanningSequence", "")).upper()
    echo_time = sidecar.get("EchoTime")
    if "LOCALIZER" in image_type or re.search(r"scout|localizer|survey", words):
        return None, "a localizer"
    if image_type & {"MIP", "MNIP", "MINIP"} or re.search(r"(^|[^a-z])(mip|minip|mnip)([^a-z]|$)", words):
        return None, "a projection (minimum/maximum intensity), not an image"
    if image_type & {"P", "PHASE"}:
        return "phase", "phase image"
    if "SWI" in image_type:
        return "swi", "SWI"
    if "flair" in words or "IR" in re.split(r"[\\_\s]+", sequence):
        return None, "an inversion-recovery (FLAIR) series, not T2-weighted"
    if re.search(r"t2(?!\s*\*|s\b|star|_?map)", words) or (
        "SE" in sequence and isinstance(echo_time, (int, float)) and echo_time >= 0.06
    ):
        return "t2", "T2-weighted"
    if "GR" in sequence and "ORIGINAL" in image_type and image_type & {"M", "MAGNITUDE"}:
        return "magnitude", "gradient-echo magnitude"
    if "swi" in words:
        return "swi", "SWI"
    return None, "not a T2-weighted, SWI or gradient-echo magnitude/phase series"


def scan_date(sidecar: dict) -> str | None:
    """The scan's date as ``YYYYMMDD`` from AcquisitionDateTime (or AcquisitionDate), None if unstated."""
    value = str(sidecar.get("AcquisitionDateTime") or sidecar.get("AcquisitionDate") or "")
    try:
        return datetime.date.fromisoformat(value[:10]).strftime("%Y%m%d")
    except ValueError:
        return None


def assign_participants(series: list[Series], *, subject: str | None = None, session: str | None = None) -> None:
    """Set each series' participant: ``subject`` (else its PatientID) and ``session`` (else its scan date;
    ``""`` for no session level), as BIDS labels. Series without one are left out, with the reason."""
    patients = {s.sidecar.get("PatientID") for s in series}
    if subject is not None and len(patients) > 1:
        raise InputError(
            None, f"the DICOM folder holds {len(patients)} patients; --subject names one: import them one at a time"
        )
    for s in series:
        label = bids_label(subject if subject is not None else s.sidecar.get("PatientID", ""))
        if not label:
            s.reason = "no PatientID with letters or digits: give --subject"
            continue
        visit = bids_label(session) if session is not None else scan_date(s.sidecar)
        s.participant = (label, visit or None)


def target_path(bids_root: Path, participant: tuple[str, str | None], role: str) -> Path:
    """``bids_root/sub-X[/ses-Y]/anat/sub-X[_ses-Y]_<suffix>.nii.gz`` (names from :func:`.bids.raw_path`)."""
    subject, session = participant
    return raw_path(bids_root, subject, session, role)


def plan_import(series: list[Series], bids_root: Path) -> ImportReport:
    """Roles and targets for every series; unknown roles and roles claimed twice for a participant are left out."""
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
    dicom_dir: str | Path, bids_root: str | Path, *, subject: str | None = None, session: str | None = None
) -> ImportReport:
    """Convert ``dicom_dir`` and sort its series into the BIDS folder ``bids_root`` (created if needed).

    ``subject`` / ``session`` replace PatientID / the scan date (``session=""``: no session level).
    Refuses (InputError) before writing anything when a target file already exists."""
    bids_root = Path(bids_root)
    if bids_root.exists() and not bids_root.is_dir():
        raise InputError(bids_root, "exists and is not a folder; give a folder for the BIDS dataset")
    with tempfile.TemporaryDirectory(prefix="deepmir-dcm2niix-") as work_dir:
        series = convert(dicom_dir, work_dir)
        assign_participants(series, subject=subject, session=session)
        report = plan_import(series, bids_root)
        existing = [target for _, target in report.imported if target.exists() or _sidecar_of(target).exists()]
        if existing:
            raise InputError(
                existing[0],
                f"already exists ({len(existing)} of the files to import do); deepmir import never replaces files: "
                "import into a new folder, or move those files away first",
            )
        for s, target in report.imported:
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as temporary:
                shutil.copyfile(s.nifti, temporary)
            write_json(_sidecar_of(target), {k: v for k, v in s.sidecar.items() if k not in IDENTIFYING_FIELDS})
    description = bids_root / "dataset_description.json"
    if report.imported and not description.exists():
        write_json(description, {"Name": "Imported by deepmir import", "BIDSVersion": "1.9.0", "DatasetType": "raw"})
    return report


def _sidecar_of(nifti: Path) -> Path:
    return nifti.with_name(nifti.name[: -len(".nii.gz")] + ".json")
