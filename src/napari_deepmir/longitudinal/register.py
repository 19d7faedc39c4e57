"""The follow-up SWI registered rigidly to the baseline SWI, and the residual checked.

Reuses the T2/QSM check's SimpleITK registration (:mod:`..io.registration`: Mattes mutual information inside
the baseline's brain): a coarse pass on about 4 mm voxels from the headers' alignment, then a fine pass on
about 2 mm voxels from there. The **residual** is the check run again on the registered follow-up: how far
(mm) a fresh coarse registration would still move a brain voxel. Above
:data:`..io.registration.MAX_MISALIGNMENT_MM` the match of lesions across time is not to be trusted, and a
warning says so.
"""

from dataclasses import dataclass

import numpy as np

from ..io.nifti import Volume
from ..io.registration import (
    COARSE_MM,
    FINE_MM,
    MAX_MISALIGNMENT_MM,
    brain_nmi,
    max_displacement_mm,
    rigid_registration,
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


def register_sessions(baseline: Volume, followup: Volume, brain: np.ndarray) -> SessionRegistration:
    """Register the follow-up SWI to the baseline SWI inside the baseline's ``brain`` (see the module doc)."""
    coarse = rigid_registration(followup, baseline, brain, voxel_mm=COARSE_MM, precision_mm=0.1, relaxation=0.5)
    transform = rigid_registration(
        followup, baseline, brain, voxel_mm=FINE_MM, precision_mm=0.02, relaxation=0.6, initial=coarse
    )
    registered = Volume(followup.data, np.linalg.solve(transform, followup.affine))
    check = rigid_registration(registered, baseline, brain, voxel_mm=COARSE_MM, precision_mm=0.1, relaxation=0.5)
    return SessionRegistration(
        transform,
        max_displacement_mm(transform, brain, baseline.affine),
        max_displacement_mm(check, brain, baseline.affine),
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
