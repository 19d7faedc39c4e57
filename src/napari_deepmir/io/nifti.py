"""Reading and writing single NIfTI volumes, with validation that names the file and the problem."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import InputError

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti_path(path: str | Path) -> bool:
    """True if ``path`` has a NIfTI file name."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


@dataclass
class Volume:
    """A 3D image with its voxel-to-world (scanner RAS, mm) affine."""

    data: np.ndarray
    affine: np.ndarray
    path: Path | None = None
    warnings: list[str] = field(default_factory=list)
    #: Voxels that were NaN/infinite in the file (set to 0 in ``data``), or None if there were none.
    invalid: np.ndarray | None = None

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm along each array axis."""
        return voxel_sizes(self.affine)


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    """Voxel size in mm along each array axis of ``affine``."""
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))


def load_volume(path: str | Path, *, dtype=np.float32, check_values: bool = True) -> Volume:
    """Load a 3D NIfTI image (a 4D file holding a single volume is accepted).

    Raises :class:`InputError` naming the file for: a missing file, a file that is not NIfTI or is
    corrupt, the wrong number of dimensions, and (with ``check_values``) all-NaN or constant data.
    NaN/inf voxels are replaced by 0 and reported in ``Volume.warnings``.
    """
    import nibabel as nib

    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a folder, expected a NIfTI file (.nii or .nii.gz)")
    try:
        image = nib.load(str(path))
    except Exception as error:  # nibabel raises several types for unreadable files
        raise InputError(path, f"not a readable NIfTI file ({error})") from None
    if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputError(path, f"not a NIfTI image (nibabel read it as {type(image).__name__})")
    shape = image.shape
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise InputError(path, f"expected a 3D volume, found shape {image.shape}")
    try:
        data = np.asarray(image.dataobj, dtype=dtype).reshape(shape)
    except Exception as error:
        raise InputError(path, f"corrupt or truncated NIfTI data ({error})") from None
    volume = Volume(data=data, affine=image.affine.astype(np.float64), path=path)
    if check_values:
        _check_values(volume)
    return volume


def _check_values(volume: Volume) -> None:
    finite = np.isfinite(volume.data)
    if not finite.any():
        raise InputError(volume.path, "every voxel is NaN or infinite")
    values = volume.data[finite]
    if values.min() == values.max():
        raise InputError(volume.path, f"constant image (every voxel is {values.min():g})")
    n_bad = int(finite.size - finite.sum())
    if n_bad:
        volume.data[~finite] = 0
        volume.invalid = ~finite
        volume.warnings.append(
            f"{volume.path}: {n_bad} NaN/infinite voxels ({100 * n_bad / finite.size:.2f}%) set to 0"
        )


def save_nifti(path: str | Path, data: np.ndarray, affine: np.ndarray, *, intent: str | None = None) -> Path:
    """Write ``data`` with ``affine`` to ``path`` atomically; the header's qform and sform are both set."""
    import nibabel as nib

    image = nib.Nifti1Image(np.asarray(data), np.asarray(affine, dtype=np.float64))
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    if intent:
        image.header.set_intent(intent)
    with atomic_path(path) as tmp:
        nib.save(image, str(tmp))
    return Path(path)


def save_labels(path: str | Path, labels: np.ndarray, affine: np.ndarray) -> Path:
    """Write a label map as uint8 NIfTI (values 0/1/2, see conventions) atomically."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(f"label values must be within 0..255, found {labels.min()}..{labels.max()}")
    return save_nifti(path, labels.astype(np.uint8), affine, intent="label")
