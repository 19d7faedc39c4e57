"""Is a T2 or QSM image in register with the SWI? A cheap rigid check, and a rigid registration when it is not.

The check: a rigid registration (SimpleITK, Mattes mutual information inside the SWI brain mask) on a
coarse grid (about :data:`COARSE_MM` mm voxels), started from the headers' alignment. The farthest a brain
voxel moves under the transform it finds is the misalignment. Above :data:`MAX_MISALIGNMENT_MM` the
registration is refined on a :data:`FINE_MM` mm grid, and when it raises the normalised mutual information
(NMI) inside the brain by at least :data:`MIN_NMI_GAIN` the image is registered: its affine is corrected
before it is resampled onto the SWI grid. On aligned data the check costs a fraction of a second of CPU
(a few thousand coarse voxels).

Transforms are world-to-world 4 x 4 matrices in scanner RAS mm: ``transform @ [x, y, z, 1]`` maps a point of
the SWI's world to the same anatomy in the moving image's header world (SimpleITK's fixed-to-moving
convention), so the corrected affine of the moving image is ``inv(transform) @ affine``.
"""

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .nifti import Volume, voxel_sizes
from .resample import resample_to_grid

#: Voxel size (mm) of the coarse grid the check registers on.
COARSE_MM = 4.0
#: Voxel size (mm) of the grid a needed registration is refined on.
FINE_MM = 2.0
#: A brain voxel moved further than this (mm) by the check's registration means the image is out of register.
MAX_MISALIGNMENT_MM = 2.0
#: The registration is applied only if it raises the NMI inside the brain by at least this much.
MIN_NMI_GAIN = 0.005
#: Histogram bins of the NMI.
NMI_BINS = 32
#: Brains smaller than this (ml) are not checked: too few coarse voxels for a reliable registration.
MIN_BRAIN_ML = 100.0
#: ``auto``: check and register when needed; ``check``: check and warn only; ``off``: no check.
MODES = ("auto", "check", "off")


@dataclass
class Alignment:
    """How a modality lines up with the SWI: the check's figures, and whether it was registered.

    ``skipped`` says why a modality was not checked (its figures are then NaN)."""

    modality: str
    misalignment_mm: float = float("nan")
    nmi_header: float = float("nan")
    nmi_registered: float = float("nan")
    transform: np.ndarray = field(default_factory=lambda: np.eye(4))
    registered: bool = False
    skipped: str = ""

    @property
    def needs_registration(self) -> bool:
        return self.misalignment_mm > MAX_MISALIGNMENT_MM and self.nmi_registered - self.nmi_header >= MIN_NMI_GAIN

    def describe(self) -> str:
        """One line for ``deepmir info``, warnings and the Detect widget."""
        name = self.modality.upper()
        if self.skipped:
            return f"{name} alignment to the SWI not checked: {self.skipped}"
        figures = (
            f"a rigid check moves brain voxels up to {self.misalignment_mm:.1f} mm; "
            f"NMI in the brain {self.nmi_header:.3f} as the headers say"
        )
        if self.misalignment_mm > MAX_MISALIGNMENT_MM:
            figures += f", {self.nmi_registered:.3f} registered"
        if self.registered:
            return f"{name} was out of register with the SWI ({figures}): registered rigidly to the SWI"
        if self.needs_registration:
            return f"{name} is out of register with the SWI ({figures}): it would be registered (registration off)"
        return f"{name} is in register with the SWI ({figures})"

    def provenance(self) -> dict:
        """The record written into an output set's provenance JSON."""
        if self.skipped:
            return {"Checked": False, "Reason": self.skipped}
        return {
            "Checked": True,
            "MisalignmentMm": round(self.misalignment_mm, 3),
            "NmiHeader": round(self.nmi_header, 4),
            "NmiRegistered": round(self.nmi_registered, 4),
            "Registered": self.registered,
            "TransformSwiToImageRasMm": np.round(self.transform, 6).tolist(),
        }


def normalized_mutual_information(a: np.ndarray, b: np.ndarray, bins: int = NMI_BINS) -> float:
    """(H(a) + H(b)) / H(a, b) of two samples of equal length (1 when unrelated, 2 when identical)."""
    joint, _, _ = np.histogram2d(a, b, bins=bins)
    joint = joint / max(joint.sum(), 1)

    def entropy(p):
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    h_joint = entropy(joint)
    return (entropy(joint.sum(0)) + entropy(joint.sum(1))) / h_joint if h_joint > 0 else 1.0


def _sitk_image(data: np.ndarray, affine: np.ndarray):
    """A SimpleITK image of ``data`` placed by a RAS ``affine`` (SimpleITK keeps it as the physical frame)."""
    import SimpleITK as sitk

    spacing = voxel_sizes(affine)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(data, np.float32).transpose(2, 1, 0)))
    image.SetSpacing(spacing.tolist())
    image.SetOrigin(affine[:3, 3].tolist())
    image.SetDirection((affine[:3, :3] / spacing).flatten().tolist())
    return image


def _coarse(data: np.ndarray, affine: np.ndarray, target_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """``data`` averaged over blocks of about ``target_mm`` mm (whole voxels), with the affine of the coarse grid."""
    step = np.maximum(1, np.round(target_mm / voxel_sizes(affine))).astype(int)
    if (step == 1).all():
        return np.asarray(data, np.float32), affine
    shape = np.maximum(1, np.array(data.shape) // step)
    smoothed = ndimage.uniform_filter(np.asarray(data, np.float32), size=step)
    small = smoothed[tuple(slice(s // 2, s // 2 + n * s, s) for s, n in zip(step, shape))]
    scaled = affine.copy()
    scaled[:3, :3] = affine[:3, :3] * step
    scaled[:3, 3] = affine[:3, :3] @ (step // 2) + affine[:3, 3]
    return np.ascontiguousarray(small, np.float32), scaled


def _as_matrix(transform) -> np.ndarray:
    """A SimpleITK rigid transform as a 4 x 4 matrix (fixed world -> moving world)."""
    matrix = np.eye(4)
    rotation = np.array(transform.GetMatrix()).reshape(3, 3)
    centre = np.array(transform.GetCenter())
    matrix[:3, :3] = rotation
    matrix[:3, 3] = np.array(transform.GetTranslation()) + centre - rotation @ centre
    return matrix


def rigid_registration(
    moving: Volume,
    reference: Volume,
    brain: np.ndarray,
    *,
    voxel_mm: float,
    precision_mm: float,
    relaxation: float = 0.8,
    initial: np.ndarray | None = None,
) -> np.ndarray:
    """The rigid transform (4 x 4, SWI world -> moving world) that best aligns ``moving`` to ``reference``
    inside ``brain`` (a mask on the reference grid): Mattes mutual information, every voxel sampled,
    regular-step gradient descent (its step shrinking by ``relaxation`` at each turn, until below
    ``precision_mm``), on grids of about ``voxel_mm`` mm voxels, started from ``initial`` (default: the headers'
    alignment)."""
    import SimpleITK as sitk

    fixed_data, fixed_affine = _coarse(reference.data, reference.affine, voxel_mm)
    moving_data, moving_affine = _coarse(moving.data, moving.affine, voxel_mm)
    mask_data, _ = _coarse(brain.astype(np.float32), reference.affine, voxel_mm)
    fixed = _sitk_image(fixed_data, fixed_affine)
    mask = sitk.Cast(_sitk_image(mask_data > 0.5, fixed_affine), sitk.sitkUInt8)
    method, transform = rigid_mi_method(
        fixed, mask, initial, min_step=precision_mm, iterations=200, relaxation=relaxation
    )
    method.Execute(fixed, _sitk_image(moving_data, moving_affine))
    return _as_matrix(transform)


def rigid_mi_method(fixed, mask, initial: np.ndarray | None, *, min_step: float, iterations: int, relaxation: float):
    """(SimpleITK registration method, its rigid transform, updated in place): Mattes mutual information inside
    ``mask``, every voxel sampled, regular-step gradient descent in physical units, started from ``initial``
    (4 x 4, fixed world -> moving world; None: the headers' alignment)."""
    import SimpleITK as sitk

    transform = sitk.Euler3DTransform()
    transform.SetCenter(fixed.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in fixed.GetSize()]))
    if initial is not None:
        centre = np.array(transform.GetCenter())
        transform.SetMatrix(initial[:3, :3].flatten().tolist())
        transform.SetTranslation((initial[:3, 3] - centre + initial[:3, :3] @ centre).tolist())
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=NMI_BINS)
    method.SetMetricFixedMask(mask)
    method.SetMetricSamplingStrategy(method.NONE)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0,
        minStep=min_step,
        numberOfIterations=iterations,
        relaxationFactor=relaxation,
        gradientMagnitudeTolerance=1e-8,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetInitialTransform(transform, inPlace=True)
    return method, transform


def max_displacement_mm(transform: np.ndarray, brain: np.ndarray, affine: np.ndarray) -> float:
    """How far (mm) ``transform`` moves the farthest point of ``brain`` (corners of its bounding box)."""
    where = np.argwhere(brain)
    if where.size == 0:
        return 0.0
    lo, hi = where.min(axis=0), where.max(axis=0)
    corners = np.array(np.meshgrid(*zip(lo, hi), indexing="ij")).reshape(3, -1).astype(float)
    world = affine[:3, :3] @ corners + affine[:3, 3:4]
    moved = transform[:3, :3] @ world + transform[:3, 3:4]
    return float(np.linalg.norm(moved - world, axis=0).max())


def brain_nmi(moving: Volume, reference: Volume, brain: np.ndarray, transform: np.ndarray | None = None) -> float:
    """NMI inside ``brain`` between the reference and ``moving`` resampled onto it (through ``transform``)."""
    affine = moving.affine if transform is None else np.linalg.solve(transform, moving.affine)
    step = np.maximum(1, np.round(FINE_MM / reference.spacing)).astype(int)
    sub = tuple(slice(None, None, s) for s in step)
    grid_affine = reference.affine.copy()
    grid_affine[:3, :3] = reference.affine[:3, :3] * step
    target_shape = reference.data[sub].shape
    data = resample_to_grid(moving.data, affine, target_shape, grid_affine)
    inside = brain[sub] & (data != 0)
    return normalized_mutual_information(reference.data[sub][inside], data[inside])


def check_alignment(modality: str, moving: Volume, reference: Volume, brain: np.ndarray) -> Alignment:
    """Measure how far ``moving`` is out of register with ``reference`` inside ``brain`` (see the module doc)."""
    transform = rigid_registration(moving, reference, brain, voxel_mm=COARSE_MM, precision_mm=0.1, relaxation=0.5)
    misalignment = max_displacement_mm(transform, brain, reference.affine)
    nmi_header = brain_nmi(moving, reference, brain)
    alignment = Alignment(modality, misalignment, nmi_header, nmi_header, transform)
    if misalignment > MAX_MISALIGNMENT_MM:
        alignment.transform = rigid_registration(
            moving, reference, brain, voxel_mm=FINE_MM, precision_mm=0.02, relaxation=0.6, initial=transform
        )
        alignment.nmi_registered = brain_nmi(moving, reference, brain, alignment.transform)
    return alignment


def registered_volume(moving: Volume, alignment: Alignment) -> Volume:
    """``moving`` with its affine corrected by ``alignment``'s transform (its data untouched)."""
    affine = np.linalg.solve(alignment.transform, moving.affine)
    return Volume(moving.data, affine, moving.path, list(moving.warnings), moving.invalid)


def align_to_reference(
    modality: str, moving: Volume, reference: Volume, brain: np.ndarray, *, mode: str = "auto"
) -> tuple[Volume, Alignment | None]:
    """Check ``moving`` against ``reference`` (the SWI) and, with ``mode`` ``auto``, register it when needed.

    Returns the volume to resample (its affine corrected when registered) and the :class:`Alignment`
    (None with ``mode`` ``off``). A QSM on the SWI's own grid comes from the same acquisition and is not
    checked; neither is a brain under :data:`MIN_BRAIN_ML`."""
    if mode not in MODES:
        raise ValueError(f"registration must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "off":
        return moving, None
    if modality == "qsm" and on_same_grid(moving, reference):
        return moving, Alignment(modality, skipped="on the SWI's own grid (the same acquisition)")
    brain_ml = float(brain.sum() * np.prod(reference.spacing)) / 1000
    if brain_ml < MIN_BRAIN_ML:
        return moving, Alignment(modality, skipped=f"brain of {brain_ml:.0f} ml, under {MIN_BRAIN_ML:g} ml")
    try:
        alignment = check_alignment(modality, moving, reference, brain)
    except RuntimeError as error:  # SimpleITK: e.g. too few voxels of the two images overlap
        return moving, Alignment(modality, skipped=f"the registration failed ({str(error).strip().splitlines()[-1]})")
    if mode == "auto" and alignment.needs_registration:
        alignment.registered = True
        return registered_volume(moving, alignment), alignment
    return moving, alignment


def on_same_grid(a: Volume, b: Volume) -> bool:
    """Whether two volumes share shape and affine."""
    return a.data.shape == b.data.shape and bool(np.allclose(a.affine, b.affine, atol=1e-4))
