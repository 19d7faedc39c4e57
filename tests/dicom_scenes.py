"""DICOM series written by the tests (pydicom): a tiny head as a scanner would store it, slice by slice.

Every series is an axial stack, optionally tilted about the left-right axis, with the orientation,
position and spacing tags dcm2niix reads; the NIfTI affine the series should come back with is
:func:`expected_affine`.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

#: DICOM's patient frame is LPS, NIfTI's world RAS.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Grid:
    """An axial stack: ``shape`` (columns, rows, slices), voxel size (mm), tilt about x (degrees), first voxel (LPS)."""

    shape: tuple[int, int, int] = (40, 48, 14)
    voxel_mm: tuple[float, float, float] = (2.5, 2.5, 4.0)
    tilt_deg: float = 0.0
    origin_lps: tuple[float, float, float] = (50.0, 60.0, -26.0)

    def axes_lps(self) -> np.ndarray:
        """Unit vectors (LPS) of the column index, row index and slice index directions (as matrix columns)."""
        t = np.deg2rad(self.tilt_deg)
        row_direction = np.array([-1.0, 0.0, 0.0])  # along a row: towards the patient's right (image left to right)
        column_direction = np.array([0.0, -np.cos(t), np.sin(t)])  # down a column: towards anterior
        return np.stack([row_direction, column_direction, np.cross(row_direction, column_direction)], axis=1)


def expected_affine(grid: Grid) -> np.ndarray:
    """The voxel -> RAS affine of ``grid`` with voxel index (i along a row, j down a column, k slice)."""
    affine = np.eye(4)
    affine[:3, :3] = _LPS_TO_RAS @ grid.axes_lps() @ np.diag(grid.voxel_mm)
    affine[:3, 3] = _LPS_TO_RAS @ np.asarray(grid.origin_lps)
    return affine


def head(grid: Grid, value: float = 600.0, seed: int = 0) -> np.ndarray:
    """An ellipsoidal head with some texture, as (columns, rows, slices) uint-range floats."""
    rng = np.random.default_rng(seed)
    index = np.indices(grid.shape).astype(float)
    centre = (np.asarray(grid.shape) - 1) / 2
    radii = np.asarray(grid.shape) * np.array([0.4, 0.4, 0.42])
    inside = (((index - centre[:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(0) <= 1
    return np.where(inside, value * (1 + 0.05 * rng.standard_normal(grid.shape)), 0.0).clip(0)


@dataclass(frozen=True)
class Series:
    """A series' identity and acquisition (what a scanner writes in the header)."""

    number: int
    description: str
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "M", "ND")
    sequence: str = "GR"
    echo_time_ms: float = 20.0
    repetition_time_ms: float = 30.0
    field_strength_t: float = 3.0
    rescale: tuple[float, float] = (1.0, 0.0)  # slope, intercept
    modality: str = "MR"


@dataclass(frozen=True)
class Patient:
    """A patient's identity and one visit (study); an empty ``study_date`` leaves the date tags empty."""

    patient_id: str
    study_date: str = "20240131"
    study_uid: str = ""
    name: str = ""  # PatientName; default "Test^<patient_id>"
    birth_date: str = "19500101"


def write_series(
    folder: Path,
    patient: Patient,
    series: Series,
    grid: Grid,
    volume: np.ndarray,
    *,
    series_uid: str = "",
    skip_slices: tuple[int, ...] = (),
) -> Path:
    """Write ``volume`` ((columns, rows, slices) of stored-value floats after rescaling) as one file per slice,
    ``IM0001.dcm``... (slice k in ``IM<k+1>``); ``skip_slices`` are not written (a series with a gap);
    ``series_uid`` gives the SeriesInstanceUID (a new one by default)."""
    folder = Path(folder) / f"{patient.patient_id.replace('/', '_')}-{series.number:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    slope, intercept = series.rescale
    stored = np.round((volume - intercept) / slope).clip(0, 4095).astype(np.uint16)
    axes = grid.axes_lps()
    study_uid = patient.study_uid or generate_uid(entropy_srcs=[patient.patient_id, patient.study_date])
    series_uid, frame_uid = series_uid or generate_uid(), generate_uid()
    for k in (k for k in range(grid.shape[2]) if k not in skip_slices):
        position = np.asarray(grid.origin_lps) + axes[:, 2] * grid.voxel_mm[2] * k
        ds = _slice_header(patient, series, study_uid, series_uid, frame_uid)
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*axes[:, 0], *axes[:, 1])]
        ds.PixelSpacing = [f"{grid.voxel_mm[1]:g}", f"{grid.voxel_mm[0]:g}"]  # row spacing, column spacing
        ds.SliceThickness = f"{grid.voxel_mm[2]:g}"
        ds.SpacingBetweenSlices = f"{grid.voxel_mm[2]:g}"
        ds.SliceLocation = f"{position @ axes[:, 2]:.4f}"
        ds.Rows, ds.Columns = grid.shape[1], grid.shape[0]
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()  # rows x columns
        ds.save_as(folder / f"IM{k + 1:04d}.dcm", enforce_file_format=True)
    return folder


def _slice_header(patient: Patient, series: Series, study_uid: str, series_uid: str, frame_uid: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Manufacturer = series.modality, "SIEMENS"
    ds.PatientID, ds.PatientName = patient.patient_id, patient.name or f"Test^{patient.patient_id}"
    ds.PatientBirthDate, ds.PatientSex = patient.birth_date, "F"
    ds.AccessionNumber, ds.ReferringPhysicianName = "ACC0001", "Referring^Doctor"
    ds.InstitutionName, ds.StationName, ds.DeviceSerialNumber = "General Hospital", "MRC0001", "12345"
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = patient.study_date
    ds.StudyTime, ds.SeriesTime, ds.AcquisitionTime = "090000", f"09{series.number:02d}00", f"09{series.number:02d}00"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
    ds.StudyID, ds.SeriesNumber, ds.AcquisitionNumber = "1", series.number, 1
    ds.SeriesDescription = ds.ProtocolName = series.description
    ds.ImageType = list(series.image_type)
    ds.ScanningSequence, ds.SequenceVariant, ds.MRAcquisitionType = series.sequence, "NONE", "3D"
    ds.EchoTime, ds.RepetitionTime = f"{series.echo_time_ms:g}", f"{series.repetition_time_ms:g}"
    ds.MagneticFieldStrength = f"{series.field_strength_t:g}"
    ds.FlipAngle, ds.EchoNumbers = "15", 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = f"{series.rescale[0]:g}", f"{series.rescale[1]:g}"
    return ds


def truncate(path: Path, cut_bytes: int = 300) -> None:
    """Cut the last ``cut_bytes`` of a file (a copy that broke off: its pixel data are incomplete)."""
    data = path.read_bytes()
    path.write_bytes(data[:-cut_bytes])
