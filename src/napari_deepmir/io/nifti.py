"""Reading and writing single NIfTI volumes, with validation that names the file and the problem."""

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
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


#: Largest image we read (voxels), checked from the header before any data is decompressed: 2^29 voxels
#: is 2 GiB as float32. Override with the environment variable ``DEEPMIR_MAX_VOXELS``.
MAX_VOXELS = 2**29
#: Plausible voxel sizes (mm) for a brain MRI; anything outside is a broken affine or header.
VOXEL_MM_RANGE = (0.05, 20.0)


#: A ``.nii.gz`` whose data would take more than this (bytes) once decompressed ...
EXPANSION_CHECKED_BYTES = 256 * 2**20
#: ... may not be more than this many times the size of the file: MR images compress 2-10x, empty label maps
#: a few hundred times (and are small), a crafted file a thousand times.
MAX_EXPANSION = 100


def max_voxels() -> int:
    """The voxel budget: ``DEEPMIR_MAX_VOXELS`` if set, else :data:`MAX_VOXELS`."""
    value = os.environ.get("DEEPMIR_MAX_VOXELS", "").strip()
    if not value:
        return MAX_VOXELS
    if not value.isdigit():
        raise InputError(None, f"DEEPMIR_MAX_VOXELS must be a whole number of voxels, not {value!r}")
    return int(value)


def load_volume(
    path: str | Path, *, dtype=np.float32, check_values: bool = True, complex_to_magnitude: bool = False
) -> Volume:
    """Load a 3D NIfTI image (a 4D file holding a single volume is accepted).

    Raises :class:`InputError` naming the file for: a missing file, a file that is not NIfTI or is
    corrupt, the wrong number of dimensions, an image over the voxel budget (:func:`max_voxels`, checked
    from the header before reading), an unusable affine (see :func:`choose_affine`), complex data (unless
    ``complex_to_magnitude``: then its magnitude, with a warning — right for SWI and T2, never for QSM)
    and (with ``check_values``) all-NaN or constant data. NaN/inf voxels are replaced by 0 and reported
    in ``Volume.warnings``.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a folder, expected a NIfTI file (.nii or .nii.gz)")
    try:
        image = nib.load(str(path))
    except Exception as error:  # noqa: BLE001 (nibabel raises several types for unreadable files)
        raise InputError(path, f"not a readable NIfTI file ({error})") from None
    if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputError(path, f"not a NIfTI image (nibabel read it as {type(image).__name__})")
    shape = image.shape
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise InputError(path, f"expected a 3D volume, found shape {image.shape}")
    if min(shape) < 1:
        raise InputError(path, f"empty image (shape {shape})")
    budget = max_voxels()
    if math.prod(shape) > budget:
        raise InputError(
            path,
            f"image of {' x '.join(map(str, shape))} voxels ({math.prod(shape):,}) is over the budget of {budget:,} "
            "voxels "
            "(set DEEPMIR_MAX_VOXELS to raise it)",
        )
    stored = image.get_data_dtype()
    _check_expansion(path, math.prod(shape) * stored.itemsize)
    affine, warnings = choose_affine(image.header, path)
    if stored.kind not in "buifc":
        raise InputError(path, f"unsupported data type {stored} (expected a scalar image)")
    if stored.kind == "c" and not complex_to_magnitude:
        raise InputError(path, f"complex-valued data ({stored}); expected a real image (a QSM map is never complex)")
    try:
        if stored.kind == "c":
            data = np.abs(np.asarray(image.dataobj)).astype(dtype).reshape(shape)
        else:
            data = np.asarray(image.dataobj, dtype=dtype).reshape(shape)
    except Exception as error:  # noqa: BLE001 (gzip, zlib, numpy and nibabel each raise their own)
        raise InputError(path, f"corrupt or truncated NIfTI data ({error})") from None
    if stored.kind == "c":
        warnings.append(f"{path}: complex-valued data ({stored}); using its magnitude")
    volume = Volume(data=data, affine=affine, path=path, warnings=warnings)
    if check_values:
        _check_values(volume)
    return volume


def _check_expansion(path: Path, decompressed: int) -> None:
    """Refuse a compressed file whose header promises far more data than its size can hold (a gzip bomb): over
    :data:`EXPANSION_CHECKED_BYTES` and more than :data:`MAX_EXPANSION` times the file. Checked before anything
    is decompressed; an uncompressed ``.nii`` (whose size is its data) is never refused by this rule."""
    if not path.name.lower().endswith(".gz") or decompressed <= EXPANSION_CHECKED_BYTES:
        return
    size = max(path.stat().st_size, 1)
    if decompressed > MAX_EXPANSION * size:
        raise InputError(
            path,
            f"its header promises {decompressed / 2**20:,.0f} MiB of data from a {size / 2**20:,.1f} MiB file "
            f"(x{decompressed / size:,.0f}); MR images do not compress more than x{MAX_EXPANSION}. If it is real, "
            "decompress it first (gunzip) and give the .nii",
        )


def choose_affine(header, path: str | Path | None = None) -> tuple[np.ndarray, list[str]]:
    """The voxel-to-world affine of a NIfTI header and warnings: the sform, else the qform, else voxel sizes only.

    A coded sform that is unusable while the qform is fine falls back to the qform with a warning; an unusable
    affine otherwise raises :class:`InputError` (non-finite values, a zero or implausible voxel size, a singular
    matrix).
    """
    sform, sform_code = header.get_sform(coded=True)
    qform, qform_code = header.get_qform(coded=True)
    coded = [(name, a) for name, a, code in (("sform", sform, sform_code), ("qform", qform, qform_code)) if code]
    if not coded:
        base = header.get_base_affine()
        problem = affine_problem(base)
        if problem:
            raise InputError(path, f"unusable voxel sizes: {problem}")
        return base.astype(np.float64), [f"{path}: no sform or qform; orientation unknown, using voxel sizes only"]
    problems = []
    for name, affine in coded:
        problem = affine_problem(affine)
        if problem is None:
            notes = [f"{path}: unusable sform ({problems[0]}); using the qform"] if problems else []
            return np.asarray(affine, dtype=np.float64), notes
        problems.append(problem)
    raise InputError(path, f"unusable affine: {'; '.join(f'{n}: {p}' for (n, _), p in zip(coded, problems))}")


def affine_problem(affine: np.ndarray) -> str | None:
    """Why ``affine`` cannot map voxels to the world (mm), or None if it can."""
    affine = np.asarray(affine, dtype=np.float64)
    if not np.isfinite(affine).all():
        return "non-finite values (NaN or infinity)"
    sizes = voxel_sizes(affine)
    size_text = " x ".join(f"{s:g}" for s in sizes)
    if (sizes == 0).any():
        return f"zero voxel size ({size_text} mm)"
    if abs(np.linalg.det(affine[:3, :3])) < 1e-6 * np.prod(sizes):
        return f"singular matrix (its axes are not independent; voxel size {size_text} mm)"
    low, high = VOXEL_MM_RANGE
    if sizes.min() < low or sizes.max() > high:
        return f"implausible voxel size {size_text} mm (expected {low:g} to {high:g} mm)"
    return None


def _check_values(volume: Volume) -> None:
    """Refuse all-NaN and constant images; NaN/inf voxels become 0 with a warning. No copy of the data is made
    (``nanmin``/``nanmax`` on a volume without NaN read it in place)."""
    finite = np.isfinite(volume.data)
    if not finite.any():
        raise InputError(volume.path, "every voxel is NaN or infinite")
    all_finite = bool(finite.all())
    low, high = (volume.data.min(), volume.data.max()) if all_finite else _finite_range(volume.data, finite)
    if low == high:
        raise InputError(volume.path, f"constant image (every voxel is {low:g})")
    n_bad = int(finite.size - finite.sum())
    if n_bad:
        volume.data[~finite] = 0
        volume.invalid = ~finite
        volume.warnings.append(
            f"{volume.path}: {n_bad} NaN/infinite voxels ({100 * n_bad / finite.size:.2f}%) set to 0"
        )


def _finite_range(data: np.ndarray, finite: np.ndarray) -> tuple[float, float]:
    """(min, max) of the finite voxels of ``data``."""
    return float(np.min(data, where=finite, initial=np.inf)), float(np.max(data, where=finite, initial=-np.inf))


def save_nifti(path: str | Path, data: np.ndarray, affine: np.ndarray, *, intent: str | None = None) -> Path:
    """Write ``data`` with ``affine`` to ``path`` atomically; the header's qform and sform are both set, and its
    units (millimetres, seconds) are stated, as the BIDS validator asks."""
    image = nib.Nifti1Image(np.asarray(data), np.asarray(affine, dtype=np.float64))
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm", "sec")
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
