"""DICOM headers read before conversion: which files belong to which person and series, and what is wrong
with a series before dcm2niix sees it.

Files are grouped by what identifies a person (PatientID, PatientName, PatientBirthDate) and a series
(StudyInstanceUID, SeriesInstanceUID), so two patients whose files share a SeriesInstanceUID stay two series;
within a series, copies of one image (the same SOPInstanceUID) count once. Checks: people whose PatientIDs
give one BIDS label or share one PatientID (:func:`identity_conflicts`), text with control characters
(:func:`control_characters`), and slice stacks with a missing slice (:func:`slice_gap`). pydicom reads the
headers only (``stop_before_pixels``).
"""

import re
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom

from .errors import InputError

#: Bytes at which a DICOM file (Part 10) says ``DICM``.
PREAMBLE = 128
#: A spacing this many times the usual one between two neighbouring slices means slices are missing.
GAP_FACTOR = 1.5
_NOT_LABEL = re.compile(r"[^A-Za-z0-9]")
#: Characters no DICOM text value may hold (C0 controls but TAB, LF, FF, CR; and DEL).
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def bids_label(text: str) -> str:
    """``text`` as a BIDS label (letters and digits only): ``'P 01/a'`` -> ``'P01a'``."""
    return _NOT_LABEL.sub("", str(text))


def is_dicom_file(path: Path) -> bool:
    """Whether ``path`` is a DICOM Part 10 file (``DICM`` after the 128-byte preamble)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(PREAMBLE)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


@dataclass(frozen=True)
class Person:
    """Who a file says it shows: PatientID, and PatientName / PatientBirthDate as stated ('' when not)."""

    patient_id: str
    name: str
    birth_date: str

    def same_person(self, other: "Person") -> bool:
        """Whether two statements can be one person: names and birth dates agree where both are stated."""
        return all(not a or not b or a == b for a, b in ((self.name, other.name), (self.birth_date, other.birth_date)))


@dataclass
class DicomSeries:
    """The files of one series of one person, with what the headers say about it."""

    person: Person
    study_uid: str
    series_uid: str
    files: list[Path] = field(default_factory=list)
    headers: list = field(default_factory=list)  # pydicom datasets without pixels, one per file
    duplicates: int = 0  # files skipped as copies of an image already in the series

    @property
    def first(self):
        return self.headers[0]

    @property
    def started(self) -> str:
        """When the study was acquired as ``YYYYMMDDhhmmss`` ('' when its header has no date)."""
        ds = self.first
        date = str(ds.get("StudyDate") or ds.get("SeriesDate") or ds.get("AcquisitionDate") or "")
        time = str(ds.get("StudyTime") or ds.get("SeriesTime") or ds.get("AcquisitionTime") or "")
        return date + time.split(".")[0] if date else ""

    def describe(self) -> dict:
        """The few header fields a report names a series by (as a BIDS sidecar spells them)."""
        ds = self.first
        return {k: str(ds.get(k, "")) for k in ("SeriesNumber", "SeriesDescription", "ProtocolName", "Modality")}


def read_series(dicom_dir: Path) -> tuple[list[DicomSeries], list[str]]:
    """Every DICOM Part 10 image under ``dicom_dir``, grouped into series of one person; and the files skipped
    (header unreadable, or not an image), each as 'path: why'."""
    groups: dict[tuple, DicomSeries] = {}
    seen: dict[tuple, set] = defaultdict(set)
    unreadable = []
    for path in sorted(p for p in dicom_dir.rglob("*") if p.is_file()):
        if not is_dicom_file(path):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # what pydicom tolerates; a broken file fails below
                ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as error:  # noqa: BLE001 - any reason a header is unreadable is reported, not raised
            unreadable.append(f"{path}: unreadable DICOM header ({type(error).__name__}: {error})")
            continue
        if "SeriesInstanceUID" not in ds or "Rows" not in ds:
            unreadable.append(f"{path}: not a DICOM image (no SeriesInstanceUID or Rows in its header)")
            continue
        person = Person(
            str(ds.get("PatientID", "")).strip(),
            " ".join(str(ds.get("PatientName", "")).replace("^", " ").split()).casefold(),
            str(ds.get("PatientBirthDate", "")).strip(),
        )
        key = (person, str(ds.get("StudyInstanceUID", "")), str(ds.get("SeriesInstanceUID", "")))
        series = groups.setdefault(key, DicomSeries(*key))
        instance = str(ds.get("SOPInstanceUID", "")) or str(path)
        if instance in seen[key]:
            series.duplicates += 1
            continue
        seen[key].add(instance)
        series.files.append(path)
        series.headers.append(ds)
    return list(groups.values()), unreadable


def identity_conflicts(series: list[DicomSeries], subject: str | None) -> dict[int, str]:
    """Why a series may not be imported because of who it shows, by index in ``series``.

    Two PatientIDs that give one BIDS label (``P-01``, ``P01``), and one PatientID used by people whose
    PatientName or PatientBirthDate differ, would merge two people into one ``sub-`` folder: all their series
    are refused. ``subject`` (one label for the whole folder) needs a folder of one PatientID."""
    ids = sorted({s.person.patient_id for s in series})
    if subject is not None and len(ids) > 1:
        raise InputError(
            None, f"the DICOM folder holds {len(ids)} patients; --subject names one: import them one at a time"
        )
    conflicts: dict[int, str] = {}
    by_label: dict[str, list[str]] = defaultdict(list)
    for patient_id in ids:
        by_label[bids_label(patient_id)].append(patient_id)
    for index, s in enumerate(series):
        colliding = by_label[bids_label(s.person.patient_id)] if subject is None else [s.person.patient_id]
        if len(colliding) > 1:
            named = " and ".join(repr(i) for i in colliding)
            conflicts[index] = (
                f"PatientIDs {named} would both become sub-{bids_label(s.person.patient_id)}; not imported, so that "
                "two patients are not merged: import each from its own folder with --subject"
            )
            continue
        other = next(
            (o for o in series if o.person.patient_id == s.person.patient_id and not o.person.same_person(s.person)),
            None,
        )
        if other is not None:
            conflicts[index] = (
                f"PatientID {s.person.patient_id!r} is used by people whose PatientName or PatientBirthDate differ "
                f"({s.files[0]} and {other.files[0]}); not imported, so that two people are not merged"
            )
    return conflicts


def control_characters(series: DicomSeries) -> str | None:
    """'FIELD of FILE holds control characters' for the first text value of the series that does, else None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pydicom's note on an unknown escape: reported here instead
        for path, ds in zip(series.files, series.headers, strict=True):
            for element in ds:
                if element.VR in ("SH", "LO", "ST", "LT", "UT", "PN", "CS", "UC") and element.keyword:
                    values = element.value if element.VM > 1 else [element.value]
                    found = next(
                        (CONTROL_CHARACTERS.search(str(v)) for v in values if CONTROL_CHARACTERS.search(str(v))), None
                    )
                    if found:
                        return f"{element.keyword} of {path} holds a control character ({found.group()!r})"
    return None


def slice_gap(series: DicomSeries) -> str | None:
    """'slices missing ...' when a stack of the series (one echo, image type and orientation) has a spacing
    between two neighbouring slices over :data:`GAP_FACTOR` times its usual one, else None. Stacks with
    repeated positions (several images per position) are not checked."""
    stacks: dict[tuple, list[float]] = defaultdict(list)
    files: dict[tuple, list[Path]] = defaultdict(list)
    for path, ds in zip(series.files, series.headers, strict=True):
        orientation, position = ds.get("ImageOrientationPatient"), ds.get("ImagePositionPatient")
        if orientation is None or position is None or len(orientation) != 6:
            continue
        rows, columns = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
        key = (str(ds.get("EchoNumbers", "")), tuple(ds.get("ImageType", [])), tuple(np.round(orientation, 3)))
        stacks[key].append(float(np.cross(rows, columns) @ np.asarray(position, float)))
        files[key].append(path)
    for key, positions in stacks.items():
        order = np.argsort(positions)
        z = np.asarray(positions)[order]
        steps = np.diff(z)
        if len(z) < 3 or np.any(steps < 1e-3):
            continue
        usual = float(np.median(steps))
        wide = int(np.argmax(steps))
        if steps[wide] > GAP_FACTOR * usual:
            missing = round(steps[wide] / usual) - 1
            return (
                f"slice gap: about {missing} slice(s) missing between {files[key][order[wide]]} and "
                f"{files[key][order[wide + 1]].name} ({steps[wide]:.3g} mm apart, {usual:.3g} mm elsewhere); a "
                "volume at one spacing would put the slices after it in the wrong place"
            )
    return None
