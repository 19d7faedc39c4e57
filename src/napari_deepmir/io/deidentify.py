"""De-identification of what ``deepmir import`` writes, after the DICOM PS3.15 Annex E basic profile.

Sidecars keep only the fields of :data:`KEPT_FIELDS`: how the image was acquired (field strength,
sequence, timing, geometry) and which scanner made it. Everything else dcm2niix writes is dropped: the
patient's name, ID, birth date, sex, age, weight, AccessionNumber, ReferringPhysicianName, the institution,
department, station and device serial number, study and series UIDs, StudyID, and any field dcm2niix adds
later. Dates and times of day (:data:`DATE_FIELDS`) are dropped too unless asked for (``keep_dates``), and
so is the acquisition time dcm2niix writes in the NIfTI header's ``descrip`` (``Time=...``).
"""

import gzip
import re
import shutil
from pathlib import Path

#: Sidecar fields kept: the acquisition, as BIDS names it. SeriesDescription and ProtocolName are kept (the
#: protocol names a reader needs to know what was scanned; PS3.15's "clean descriptors" option).
KEPT_FIELDS = frozenset(
    {
        "Modality", "MagneticFieldStrength", "ImagingFrequency", "Manufacturer", "ManufacturersModelName",
        "SoftwareVersions", "MRAcquisitionType", "SeriesDescription", "ProtocolName", "ScanningSequence",
        "SequenceVariant", "ScanOptions", "SequenceName", "PulseSequenceType", "PulseSequenceName",
        "PulseSequenceDetails", "ImageType", "ImageTypeText", "RawImage", "SeriesNumber", "AcquisitionNumber",
        "SliceThickness", "SpacingBetweenSlices", "SAR", "EchoNumber", "EchoTime", "EchoTrainLength",
        "RepetitionTime", "InversionTime", "FlipAngle", "PartialFourier", "BaseResolution", "ShimSetting",
        "TxRefAmp", "PhaseResolution", "ReceiveCoilName", "ReceiveCoilActiveElements", "CoilString",
        "ParallelReductionFactorInPlane", "ParallelAcquisitionTechnique", "PercentPhaseFOV", "PercentSampling",
        "PhaseEncodingSteps", "AcquisitionMatrixPE", "ReconMatrixPE", "PixelBandwidth", "DwellTime",
        "PhaseEncodingDirection", "InPlanePhaseEncodingDirectionDICOM", "ImageOrientationPatientDICOM",
        "ImageOrientationText", "SliceTiming", "NonlinearGradientCorrection", "MTState", "SpoilingState",
        "WaterFatShift", "EffectiveEchoSpacing", "TotalReadoutTime", "BodyPartExamined", "PatientPosition",
        "ConversionSoftware", "ConversionSoftwareVersion", "Units",
    }
)  # fmt: skip
#: Dates and times of day: kept only with ``keep_dates``.
DATE_FIELDS = frozenset(
    {
        "AcquisitionDateTime", "AcquisitionDate", "AcquisitionTime", "StudyDate", "StudyTime", "SeriesDate",
        "SeriesTime", "ContentDate", "ContentTime",
    }
)  # fmt: skip
_NIFTI1_HEADER = 348
_DESCRIP = slice(148, 228)
_TIME_IN_DESCRIP = re.compile(rb";?Time=[0-9.]*")


def deidentified(sidecar: dict, *, keep_dates: bool = False) -> dict:
    """The sidecar with only :data:`KEPT_FIELDS` (and :data:`DATE_FIELDS` when ``keep_dates``)."""
    kept = KEPT_FIELDS | DATE_FIELDS if keep_dates else KEPT_FIELDS
    return {key: value for key, value in sidecar.items() if key in kept}


def copy_nifti_without_time(source: Path, target: Path) -> None:
    """Copy the gzipped NIfTI-1 ``source`` to ``target`` with ``Time=...`` removed from its ``descrip`` field
    (dcm2niix writes ``TE=20;Time=90400.000`` there); the data are copied byte for byte."""
    with gzip.open(source, "rb") as reading, gzip.open(target, "wb", compresslevel=6) as writing:
        header = bytearray(reading.read(_NIFTI1_HEADER))
        if int.from_bytes(header[:4], "little") == _NIFTI1_HEADER:
            descrip = _TIME_IN_DESCRIP.sub(b"", bytes(header[_DESCRIP]).rstrip(b"\0"))
            header[_DESCRIP] = descrip[:80].ljust(80, b"\0")
        writing.write(header)
        shutil.copyfileobj(reading, writing, 1 << 20)
