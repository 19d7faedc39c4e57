"""The follow-up SWI registered rigidly to the baseline SWI, and the residual checked.

Mattes mutual information inside the baseline's brain, as the T2/QSM check (:mod:`..io.registration`), but on
the native grids in three levels (shrunk 4, 2 and 1 times, smoothed 2, 1 and 0 mm), from the headers'
alignment and from other starts (:func:`register_sessions`): a single-level pass on a resampled grid stops a
few millimetres short on two SWIs of a moved head.
The **residual** is the T2/QSM check (:func:`..io.registration.check_alignment`) run on the registered
follow-up's T2 against the baseline's T2 (both sessions' T2s, each on its SWI grid), else on the SWIs: how far
(mm) its own coarse registration would still move a brain voxel. It is an estimate, not a bound; on the SWIs of a
turned head it scatters by 1-2 mm by itself (veins and phase change with the angle to B0: on synthetic pairs it
read up to 3.9 mm where the true error was 0.25 mm), on T2s far less (0.2-0.5 mm for true errors of 0.25-0.7 mm).
Above :data:`..changes.MATCH_TOLERANCE_MM`, the fixed part of the distance that matches lesions across
time, the matches are not to be trusted, and a warning says so.
"""

from dataclasses import dataclass

import numpy as np

from ..io.nifti import Volume
from ..io.registration import (
    COARSE_MM,
    _as_matrix,
    _sitk_image,
    brain_nmi,
    check_alignment,
    max_displacement_mm,
    rigid_mi_method,
    rigid_registration,
)
from ..io.resample import resample_to_grid
from .changes import MATCH_TOLERANCE_MM


@dataclass
class SessionRegistration:
    """``transform``: 4 x 4, baseline world -> follow-up world (SimpleITK's fixed-to-moving convention), so a
    follow-up point goes to the baseline's world by :attr:`followup_to_baseline`."""

    transform: np.ndarray
    motion_mm: float
    residual_mm: float
    nmi_header: float
    nmi_registered: float
    residual_modality: str = "swi"

    @property
    def followup_to_baseline(self) -> np.ndarray:
        return np.linalg.inv(self.transform)

    @property
    def reliable(self) -> bool:
        return self.residual_mm <= MATCH_TOLERANCE_MM

    def describe(self) -> str:
        line = (
            f"follow-up registered to the baseline: the head moved brain voxels up to {self.motion_mm:.1f} mm; "
            f"NMI in the brain {self.nmi_header:.3f} as the headers say, {self.nmi_registered:.3f} registered; "
            f"residual {self.residual_mm:.1f} mm (checked on the {self.residual_modality.upper()})"
        )
        if not self.reliable:
            line += f" (over {MATCH_TOLERANCE_MM:g} mm: lesions may be matched wrongly; check the registration)"
        return line

    def provenance(self) -> dict:
        return {
            "MotionMm": round(self.motion_mm, 3),
            "ResidualMm": round(self.residual_mm, 3),
            "ResidualCheckedOn": self.residual_modality.upper(),
            "NmiHeader": round(self.nmi_header, 4),
            "NmiRegistered": round(self.nmi_registered, 4),
            "TransformBaselineToFollowupRasMm": np.round(self.transform, 6).tolist(),
        }


def _multilevel_registration(
    moving: Volume, reference: Volume, brain: np.ndarray, initial: np.ndarray | None = None
) -> np.ndarray:
    """Rigid transform (4 x 4, reference world -> moving world) in three levels on the native grids, from
    ``initial`` (default: the headers' alignment)."""
    import SimpleITK as sitk

    fixed = _sitk_image(reference.data, reference.affine)
    mask = sitk.Cast(_sitk_image(brain.astype(np.float32), reference.affine) > 0.5, sitk.sitkUInt8)
    method, transform = rigid_mi_method(fixed, mask, initial, min_step=1e-3, iterations=300, relaxation=0.5)
    method.SetShrinkFactorsPerLevel([4, 2, 1])
    method.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.Execute(fixed, _sitk_image(moving.data, moving.affine))
    return _as_matrix(transform)


def register_sessions(
    baseline: Volume,
    followup: Volume,
    brain: np.ndarray,
    *,
    baseline_t2: Volume | None = None,
    followup_t2: Volume | None = None,
) -> SessionRegistration:
    """Register the follow-up SWI to the baseline SWI inside the baseline's ``brain`` (see the module doc).

    The optimiser can stop in a local optimum when the head turned (the SWI's veins and phase change with the
    head's angle to B0), so it runs from several starts and the transform with the highest NMI of the SWIs
    wins: the headers' alignment, the T2/QSM check's coarse registration, and, when both sessions have a T2
    (on their SWI grids), the T2s' own registration (T2 contrast does not depend on the angle to B0)."""
    starts = [None, rigid_registration(followup, baseline, brain, voxel_mm=COARSE_MM, precision_mm=0.1, relaxation=0.5)]
    if baseline_t2 is not None and followup_t2 is not None:
        starts.append(_multilevel_registration(followup_t2, baseline_t2, brain))
    found = [_multilevel_registration(followup, baseline, brain, start) for start in starts] + starts[1:]
    scores = [brain_nmi(followup, baseline, brain, transform) for transform in found]
    best = int(np.argmax(scores))
    transform = found[best]
    checked = ("t2", followup_t2, baseline_t2) if len(starts) == 3 else ("swi", followup, baseline)
    registered = Volume(checked[1].data, np.linalg.solve(transform, checked[1].affine))
    residual = check_alignment(checked[0], registered, checked[2], brain).misalignment_mm
    return SessionRegistration(
        transform,
        max_displacement_mm(transform, brain, baseline.affine),
        residual,
        brain_nmi(followup, baseline, brain),
        scores[best],
        checked[0],
    )


def followup_on_baseline_grid(
    followup: Volume, registration: SessionRegistration, shape, affine, *, order: int = 1
) -> np.ndarray:
    """The follow-up image resampled onto the baseline grid through the registration (for side-by-side review)."""
    corrected = np.linalg.solve(registration.transform, followup.affine)
    return resample_to_grid(followup.data, corrected, tuple(shape), affine, order=order)
