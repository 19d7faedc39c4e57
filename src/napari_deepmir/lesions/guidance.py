"""The two-class labelling protocol as code: measure a region, flag contradictions, suggest a class.

Rules (docs/labelling-protocol.md), after DEEPMIR (Rashid et al. 2021), MARS (Gregoire et al. 2009)
and Liu et al. 2012: a CMB is small (diameter <= 10 mm), round and a strong paramagnetic source; a
non-haemorrhage iron deposit lies in the basal ganglia, may be irregular and larger, and is a weaker
paramagnetic source; calcifications are diamagnetic; veins are paramagnetic tubes. Para- and
diamagnetic are judged by one susceptibility rule, shared with the post-processing: the region's QSM
source against the tissue around it (:func:`.features.qsm_contrast`). The suggestion is advice: the
rater decides.
"""

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..conventions import LOCATION_NAMES
from .features import region_features
from .placement import lesion_place

#: Largest in-plane diameter on an axial slice above which a region is too large for a CMB (DEEPMIR: "ten
#: millimeters or less"; measured as MARS, BOMBS and Greenberg et al. 2009 do): a macrobleed.
MAX_CMB_DIAMETER_MM = 10.0
#: QSM contrast (ppb, the region's source over the tissue around it) beyond which a region is clearly
#: paramagnetic / diamagnetic: neighbouring tissues differ by less (grey +15, white matter -30).
PARAMAGNETIC_PPB = 40.0
DIAMAGNETIC_PPB = -40.0
#: An iron deposit adds less to its nucleus than a bleed's source, and QSM inversions underestimate small
#: sources: a region labelled iron is "not paramagnetic" below the post-processing's own threshold
#: (``min_qsm_ppb`` of the shipped models, calibrated on held-out subjects), not below PARAMAGNETIC_PPB.
IRON_PARAMAGNETIC_PPB = 20.0
#: QSM contrast (ppb) of a bleed's focal haemosiderin source: several hundred ppb (Liu et al. 2012), above
#: the +100..300 an iron deposit adds to its nucleus. In the basal ganglia a region at least
#: IRON_MIN_DIAMETER_MM across whose source is weaker is a diffuse deposit; a bloomed CMB is as large on
#: SWI but keeps its strong source, and a small CMB's source is weakened by partial volume only.
FOCAL_SOURCE_PPB = 250.0
IRON_MIN_DIAMETER_MM = 5.0
#: A region is tubular (a vessel) when its longest axis is this many times its middle axis and it is this long.
TUBULAR_ELONGATION = 2.5
TUBULAR_MIN_EXTENT_MM = 8.0
#: An iron deposit follows the shape of its nucleus (the putamen is itself long and thin) and may be irregular
#: (DEEPMIR), so a region labelled iron is called a vessel only when it is a clear tube.
TUBULAR_ELONGATION_IRON = 4.0
BASAL_GANGLIA = next(value for value, name in LOCATION_NAMES.items() if name == "basal ganglia")

FLAG_DIAMAGNETIC = "diamagnetic: calcification, not a bleed"
FLAG_TOO_LARGE = "too large for a CMB"
FLAG_VESSEL = "likely a vessel"
FLAG_IRON_OUTSIDE_BG = "iron deposit outside the basal ganglia"
FLAG_NO_QSM = "no QSM: a bleed cannot be told from a calcification"
FLAG_NOT_PARAMAGNETIC = "not paramagnetic on QSM"
#: Flags that say a region is no lesion at all: a detection carrying one is not reported (:mod:`.rules`).
REJECTING_FLAGS = (FLAG_VESSEL, FLAG_DIAMAGNETIC, FLAG_NOT_PARAMAGNETIC)


@dataclass
class Assessment:
    """Evidence about one region and the protocol's verdict on it."""

    diameter_mm: float
    axial_diameter_mm: float
    extent_mm: float
    qsm_mean_ppb: float
    qsm_peak_ppb: float
    qsm_contrast_ppb: float
    swi_contrast: float
    elongation: float
    location: str | None
    flags: list[str] = field(default_factory=list)
    suggested_class: str = "reject"
    reason: str = ""

    def as_dict(self) -> dict:
        """Plain dict for tables; ``flags`` joined with ';'."""
        values = asdict(self)
        values["flags"] = ";".join(self.flags)
        return values


def judge(features: dict, location: str | None, labelled_as: str | None = None) -> tuple[list[str], str, str]:
    """Protocol flags, suggested class (``cmb``, ``iron`` or ``reject``) and the reason, from measured features.

    ``labelled_as`` (``cmb``/``iron``) is the class a rater gave; class-specific flags (too large for
    a CMB, iron outside the basal ganglia) then refer to it, otherwise to the suggested class."""
    diameter, shape, contrast = features["diameter_mm"], features["elongation"], features["qsm_contrast_ppb"]
    too_large = features["axial_diameter_mm"] > MAX_CMB_DIAMETER_MM
    no_qsm = not math.isfinite(contrast)
    diamagnetic = not no_qsm and contrast <= DIAMAGNETIC_PPB
    paramagnetic = not no_qsm and contrast >= PARAMAGNETIC_PPB
    tubular = shape >= TUBULAR_ELONGATION and features["extent_mm"] >= TUBULAR_MIN_EXTENT_MM
    in_basal_ganglia = location == LOCATION_NAMES[BASAL_GANGLIA]
    qsm = "no QSM" if no_qsm else f"QSM source {contrast:+.0f} ppb over the tissue around it"
    size = f"{features['axial_diameter_mm']:.1f} mm across"

    if diamagnetic:
        suggestion, reason = "reject", f"diamagnetic ({qsm}): a calcification"
    elif tubular:
        suggestion, reason = "reject", f"tubular (axis ratio {shape:.1f} over {features['extent_mm']:.0f} mm): a vessel"
    elif not no_qsm and not paramagnetic:
        suggestion, reason = "reject", f"no paramagnetic source ({qsm})"
    elif in_basal_ganglia and too_large:
        suggestion, reason = "iron", f"basal ganglia; {size}, larger than a CMB; paramagnetic ({qsm}): an iron deposit"
    elif in_basal_ganglia and not no_qsm and contrast < FOCAL_SOURCE_PPB and diameter >= IRON_MIN_DIAMETER_MM:
        weaker = f"{qsm}, weaker than a bleed's focal source (< {FOCAL_SOURCE_PPB:.0f})"
        suggestion, reason = "iron", f"basal ganglia; {size}, diffuse: {weaker}: an iron deposit"
    elif too_large:
        suggestion, reason = "reject", f"{size}, above 10 mm, outside the basal ganglia"
    else:
        where = f"{location}; " if location else ""
        evidence = "SWI only (no QSM)" if no_qsm else f"paramagnetic ({qsm})"
        suggestion, reason = "cmb", f"{where}{size}, not tubular; {evidence}: a microbleed"

    as_class = labelled_as or suggestion
    flags = []
    if no_qsm:
        flags.append(FLAG_NO_QSM)
    if diamagnetic:
        flags.append(FLAG_DIAMAGNETIC)
    elif (
        not no_qsm
        and labelled_as is not None
        and contrast < (IRON_PARAMAGNETIC_PPB if as_class == "iron" else PARAMAGNETIC_PPB)
    ):
        flags.append(FLAG_NOT_PARAMAGNETIC)
    if too_large and as_class == "cmb":
        flags.append(FLAG_TOO_LARGE)
    if tubular and (as_class != "iron" or shape >= TUBULAR_ELONGATION_IRON):
        flags.append(FLAG_VESSEL)
    if as_class == "iron" and location is not None and not in_basal_ganglia:
        flags.append(FLAG_IRON_OUTSIDE_BG)
    return flags, suggestion, reason


def assess_region(
    mask: np.ndarray, subject, locations: np.ndarray | None = None, *, labelled_as: str | None = None
) -> Assessment:
    """Measure the region ``mask`` (on the subject's SWI grid) and judge it against the protocol."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != tuple(subject.shape):
        raise ValueError(f"mask {mask.shape} is not on the subject's grid {tuple(subject.shape)}")
    if not mask.any():
        raise ValueError("empty region: nothing to assess")
    features = region_features(mask.astype(np.int32), subject.affine, swi=subject.swi, qsm=subject.qsm).iloc[0]
    location = lesion_place(np.argwhere(mask), subject.spacing, locations=locations)[0]
    flags, suggestion, reason = judge(features, location, labelled_as)
    return Assessment(
        diameter_mm=float(features["diameter_mm"]),
        axial_diameter_mm=float(features["axial_diameter_mm"]),
        extent_mm=float(features["extent_mm"]),
        qsm_mean_ppb=float(features["qsm_mean_ppb"]),
        qsm_peak_ppb=float(features["qsm_peak_ppb"]),
        qsm_contrast_ppb=float(features["qsm_contrast_ppb"]),
        swi_contrast=float(features["swi_contrast"]),
        elongation=float(features["elongation"]),
        location=location,
        flags=flags,
        suggested_class=suggestion,
        reason=reason,
    )
