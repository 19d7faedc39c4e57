"""File input/output and the Subject: everything between files on disk and arrays on the SWI grid."""

from .errors import InputError
from .nifti import Volume, load_volume, save_labels, save_nifti
from .subject import Subject, assemble_subject, load_subject, load_subject_dir

__all__ = [
    "InputError",
    "Subject",
    "Volume",
    "assemble_subject",
    "load_subject",
    "load_subject_dir",
    "load_volume",
    "save_labels",
    "save_nifti",
]
