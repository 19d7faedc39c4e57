"""The follow-up SWI registered rigidly to the baseline SWI, and the residual checked.

Mattes mutual information inside the baseline's brain, as the T2/QSM check (:mod:`..io.registration`), but on
the native grids in three levels (shrunk 4, 2 and 1 times, smoothed 2, 1 and 0 mm), from the headers'
alignment: a single-level pass on a resampled grid stops a few millimetres short on two SWIs of a moved head.
The **residual** is the T2/QSM check (:func:`..io.registration.check_alignment`) run on the registered
follow-up: how far (mm) its own registration would still move a brain voxel. Above
:data:`..io.registration.MAX_MISALIGNMENT_MM` the match of lesions across time is not to be trusted, and a
warning says so.
"""

from dataclasses import dataclass

import numpy as np

from ..io.nifti import Volume
from ..io.registration import (
    MAX_MISALIGNMENT_MM,
    NMI_BINS,
    _as_matrix,
    _sitk_image,
    brain_nmi,
    check_alignment,
    max_displacement_mm,
)


@dataclass
class SessionRegistration:
    """``transform``: 4 x 4, baseline world -> follow-up world (SimpleITK's fixed-to-moving convention), so a
    follow-up point goes to the baseline's world by :attr:`followup_to_baseline`."""

    transform: np.ndarray
    motion_mm: float
    residual_mm: float
    nmi_header: float
    nmi_registered: float

    @property
    def followup_to_baseline(self) -> np.ndarray:
        return np.linalg.inv(self.transform)

    @property
    def reliable(self) -> bool:
        return self.residual_mm <= MAX_MISALIGNMENT_MM

    def describe(self) -> str:
        line = (
            f"follow-up registered to the baseline: the head moved brain voxels up to {self.motion_mm:.1f} mm; "
            f"NMI in the brain {self.nmi_header:.3f} as the headers say, {self.nmi_registered:.3f} registered; "
            f"residual {self.residual_mm:.1f} mm"
        )
        if not self.reliable:
            line += f" (over {MAX_MISALIGNMENT_MM:g} mm: lesions may be matched wrongly; check the registration)"
        return line

    def provenance(self) -> dict:
        return {
            "MotionMm": round(self.motion_mm, 3),
            "ResidualMm": round(self.residual_mm, 3),
            "NmiHeader": round(self.nmi_header, 4),
            "NmiRegistered": round(self.nmi_registered, 4),
            "TransformBaselineToFollowupRasMm": np.round(self.transform, 6).tolist(),
        }


def _multilevel_registration(moving: Volume, reference: Volume, brain: np.ndarray) -> np.ndarray:
    """Rigid transform (4 x 4, reference world -> moving world) in three levels on the native grids."""
    import SimpleITK as sitk

    fixed = _sitk_image(reference.data, reference.affine)
    mask = sitk.Cast(_sitk_image(brain.astype(np.float32), reference.affine) > 0.5, sitk.sitkUInt8)
    transform = sitk.Euler3DTransform()
    transform.SetCenter(fixed.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in fixed.GetSize()]))
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=NMI_BINS)
    method.SetMetricFixedMask(mask)
    method.SetMetricSamplingStrategy(method.NONE)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0, minStep=1e-3, numberOfIterations=300, relaxationFactor=0.5, gradientMagnitudeTolerance=1e-8
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([4, 2, 1])
    method.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(transform, inPlace=True)
    method.Execute(fixed, _sitk_image(moving.data, moving.affine))
    return _as_matrix(transform)


def register_sessions(baseline: Volume, followup: Volume, brain: np.ndarray) -> SessionRegistration:
    """Register the follow-up SWI to the baseline SWI inside the baseline's ``brain`` (see the module doc)."""
    transform = _multilevel_registration(followup, baseline, brain)
    registered = Volume(followup.data, np.linalg.solve(transform, followup.affine))
    residual = check_alignment("swi", registered, baseline, brain).misalignment_mm
    return SessionRegistration(
        transform,
        max_displacement_mm(transform, brain, baseline.affine),
        residual,
        brain_nmi(followup, baseline, brain),
        brain_nmi(followup, baseline, brain, transform),
    )


def followup_on_baseline_grid(
    followup: Volume, registration: SessionRegistration, shape, affine, *, order: int = 1
) -> np.ndarray:
    """The follow-up image resampled onto the baseline grid through the registration (for side-by-side review)."""
    from ..io.resample import resample_to_grid

    corrected = np.linalg.solve(registration.transform, followup.affine)
    return resample_to_grid(followup.data, corrected, tuple(shape), affine, order=order)
