"""npe2 reader: NIfTI files, subject folders and DICOM folders -> layers in millimetres (thin; see layer_data.py).

A DICOM folder goes through ``deepmir import`` (:func:`..io.dicom.import_dicom`) into a new BIDS folder in the
temporary directory (the layers' metadata name its files), and each imported subject opens as a subject folder.
"""

import tempfile
import warnings
from pathlib import Path

from .conventions import BIDS_SUFFIXES
from .io import InputError, load_subject_dir, load_volume
from .io.bids import find_subject_files, has_swi, subject_id, suffixes_read
from .io.dicom import holds_dicom, import_dicom
from .io.display import DisplayGeometry
from .io.nifti import Volume, is_nifti_path
from .io.qsm_units import check_qsm_units, detect_qsm_units, to_ppb
from .io.resample import resample_volume_to
from .io.sidecar import read_sidecar, scan_parameters, stated_qsm_units
from .layer_data import image_layer_data, labels_layer_data, layer_name, locations_layer_data, regions_layer_data
from .lesions.components import load_region_map

try:
    from .widgets._busy import busy_cursor_in_gui
except ImportError:  # the core installed without napari and Qt reads files without a cursor to show
    from contextlib import nullcontext as busy_cursor_in_gui

#: Name endings (before .nii/.nii.gz, lower case) that tell the modality of a single file.
_MODALITY_ENDINGS = {
    **{f"_{suffix.lower()}": "swi" for suffix in suffixes_read("swi")},
    "_chimap": "qsm",
    "_qsm": "qsm",
    "_t2w": "t2",
    "_t2": "t2",
}


def get_reader(path):
    """Return a reader for a NIfTI file, a folder holding a subject's SWI (or magnitude and phase) or a folder of
    DICOM files, else None."""
    if isinstance(path, list):
        return None if not path or any(get_reader(p) is None for p in path) else read_paths
    path = Path(path)
    if path.is_dir():
        return read_paths if _is_subject_folder(path) or holds_dicom(path) else None
    return read_paths if is_nifti_path(path) else None


def _is_subject_folder(folder: Path) -> bool:
    try:
        return has_swi(find_subject_files(folder))
    except InputError:
        return False


def read_paths(paths):
    """Read one or several paths; each file or folder gives its layers (the wait cursor shows in napari: a subject
    folder takes a second or more, a DICOM folder longer)."""
    with busy_cursor_in_gui():
        return _read_paths(paths)


def _read_paths(paths) -> list[tuple]:
    layers = []
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        path = Path(path)
        if not path.is_dir():
            layers.append(read_nifti_file(path))
        elif _is_subject_folder(path):
            layers.extend(read_subject_folder(path))
        else:
            layers.extend(read_dicom_folder(path))
    return layers


def read_dicom_folder(folder: Path) -> list[tuple]:
    """Import a DICOM folder into a new BIDS folder (temporary directory) and read each imported subject;
    the series left out (unknown, ambiguous) are reported as warnings."""
    bids_root = Path(tempfile.mkdtemp(prefix="deepmir-dicom-"))
    report = import_dicom(folder, bids_root)
    for line in report.lines():
        if not line.startswith("imported"):
            warnings.warn(f"{folder}: {line}", stacklevel=2)
    subjects = [f for f in report.participant_folders if _is_subject_folder(f)]
    if not subjects:
        raise InputError(
            folder,
            "no subject with an SWI (or gradient-echo magnitude and phase) among its series: "
            + "; ".join(report.lines()),
        )
    return [layer for subject in subjects for layer in read_subject_folder(subject)]


def _stem(path: Path) -> str:
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem


def read_nifti_file(path: Path) -> tuple:
    """One NIfTI file -> an Image layer (modality from the name) or a Labels layer (``_dseg``), named like the
    same file read from its subject folder (:func:`..layers.layer_name`)."""
    stem = _stem(path)
    lower = stem.lower()
    kind = next((k for k in ("locations", "regions") if lower.endswith("_" + BIDS_SUFFIXES[k].lower())), None)
    if kind is not None:
        subject = subject_id(path) or stem[: -len(BIDS_SUFFIXES[kind]) - 1]
        if kind == "regions":
            volume = load_region_map(path)
            return regions_layer_data(volume.data, _geometry(volume), name=layer_name(subject, kind))
        volume = load_volume(path, check_values=False)
        return locations_layer_data(volume.data.astype("uint8"), _geometry(volume), name=layer_name(subject, kind))
    if lower.endswith("_dseg"):
        volume = load_volume(path, check_values=False)
        subject = subject_id(path) or stem[: -len("_dseg")]
        metadata = {"path": str(path), "subject": subject, "origin": "file"}
        return labels_layer_data(
            volume.data.astype("uint8"), _geometry(volume), name=layer_name(subject, "labels"), metadata=metadata
        )
    volume = load_volume(path)
    ending, modality = next(((e, m) for e, m in _MODALITY_ENDINGS.items() if lower.endswith(e)), ("", None))
    metadata = {"path": str(path), "subject": subject_id(path) or stem[: len(stem) - len(ending)]}
    data = volume.data
    if modality == "qsm":  # QSM layers are always in ppb, whatever the file's units (stated in its sidecar, or found)
        units = stated_qsm_units(read_sidecar(path), path) or detect_qsm_units(data, data != 0)
        check_qsm_units(data, units, path, data != 0)
        data, metadata["qsm_units_in_file"] = to_ppb(data, units), units
    if modality == "swi" and scan_parameters(read_sidecar(path)):
        metadata["scan"] = scan_parameters(read_sidecar(path))
    name = layer_name(metadata["subject"], modality or "image")
    geometry = DisplayGeometry(data.shape, volume.affine)
    return image_layer_data(data, geometry, modality=modality, name=name, metadata=metadata)


def _geometry(volume: Volume) -> DisplayGeometry:
    return DisplayGeometry(volume.data.shape, volume.affine)


def read_subject_folder(folder: Path) -> list[tuple]:
    """A subject folder -> T2, QSM (hidden), SWI on top, aligned on the SWI grid (+ locations, regions and labels
    if present).

    Every layer's metadata names the subject, so pickers keep one subject's layers together."""
    subject = load_subject_dir(folder)
    for warning in subject.warnings:  # napari shows them as notifications
        warnings.warn(warning, stacklevel=2)
    geometry = DisplayGeometry(subject.shape, subject.affine)
    layers = []
    for modality in ("t2", "qsm", "swi"):
        if modality in subject.available:
            metadata = {"subject": subject.name}
            if modality in subject.paths:
                metadata["path"] = str(subject.paths[modality])
            else:  # an SWI made from a magnitude and a phase
                metadata["made_from"] = [str(subject.paths[p]) for p in ("magnitude", "phase")]
            if modality == "qsm" and subject.qsm_units:
                metadata["qsm_units_in_file"] = subject.qsm_units
            alignment = subject.alignments.get(modality)
            if alignment is not None and alignment.registered:  # the Detect widget repeats this in its status
                metadata["registration"] = alignment.describe()
            if modality == "swi" and subject.scan:
                metadata["scan"] = subject.scan  # echo time, field strength: checked against the model's card
            layer = image_layer_data(
                subject.modality(modality),
                geometry,
                modality=modality,
                name=layer_name(subject.name, modality),
                metadata=metadata,
            )
            layer[1]["visible"] = modality != "qsm"  # SWI shows the lesions; QSM is one click away
            layers.append(layer)
    files = find_subject_files(folder)
    for kind, make_layer in (("locations", locations_layer_data), ("regions", regions_layer_data)):
        if kind in files:
            volume = load_region_map(files[kind]) if kind == "regions" else load_volume(files[kind], check_values=False)
            place = make_layer(_on_swi_grid(volume, subject), geometry, name=layer_name(subject.name, kind))
            place[1]["metadata"]["deepmir"]["subject"] = subject.name
            layers.append(place)
    if "labels" in files:
        metadata = {"path": str(files["labels"]), "subject": subject.name, "origin": "file"}
        layers.append(
            labels_layer_data(
                _on_swi_grid(load_volume(files["labels"], check_values=False), subject),
                geometry,
                name=layer_name(subject.name, "labels"),
                metadata=metadata,
            )
        )
    return layers


def _on_swi_grid(volume: Volume, subject):
    reference = Volume(subject.swi, subject.affine, subject.paths.get("swi"))
    return resample_volume_to(volume, reference, order=0).astype("uint8")
