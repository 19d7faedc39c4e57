"""QSM units: detect ppm, ppb or SI (dimensionless, 1 ppm = 1e-6), check them, convert to ppb (the unit we
report in)."""

from pathlib import Path
from typing import Literal

import numpy as np

from .errors import InputError

QsmUnits = Literal["ppm", "ppb", "si"]
QSM_UNITS = ("ppm", "ppb", "si")
#: A brain whose 99th percentile of |chi| is below this is in ppm (domain.md) ...
PPM_THRESHOLD = 5.0
#: ... and below this it is in SI units (a 0.1 ppm source is stored as 1e-7).
SI_THRESHOLD = 1e-3
#: Plausible 99th percentile of |chi| in the brain once in ppb (veins ~300-450, CMBs up to > 1000).
PLAUSIBLE_P99_PPB = (1.0, 20000.0)
_TO_PPB = {"ppb": 1.0, "ppm": 1e3, "si": 1e9}


def qsm_p99(qsm: np.ndarray, mask: np.ndarray | None = None) -> float | None:
    """The 99th percentile of |chi| inside ``mask`` (default: the non-zero voxels), or None if there are none."""
    values = np.abs(qsm[mask] if mask is not None and mask.any() else qsm[qsm != 0])
    return float(np.percentile(values, 99)) if values.size else None


def detect_qsm_units(qsm: np.ndarray, mask: np.ndarray | None = None) -> QsmUnits:
    """Guess the units of a QSM map from the 99th percentile of |chi| inside ``mask``."""
    p99 = qsm_p99(qsm, mask)
    if p99 is None or p99 >= PPM_THRESHOLD:
        return "ppb"
    return "si" if p99 < SI_THRESHOLD else "ppm"


def to_ppb(qsm: np.ndarray, units: QsmUnits) -> np.ndarray:
    """Convert a QSM map in ``units`` to ppb."""
    if units not in _TO_PPB:
        raise ValueError(f"QSM units must be one of {', '.join(QSM_UNITS)}, not {units!r}")
    return qsm if units == "ppb" else qsm * np.float32(_TO_PPB[units])


def from_ppb(qsm: np.ndarray, units: QsmUnits) -> np.ndarray:
    """Convert a QSM map in ppb back to ``units`` (the inverse of :func:`to_ppb`)."""
    if units not in _TO_PPB:
        raise ValueError(f"QSM units must be one of {', '.join(QSM_UNITS)}, not {units!r}")
    return qsm if units == "ppb" else qsm / np.float32(_TO_PPB[units])


def check_qsm_units(qsm: np.ndarray, units: QsmUnits, path: str | Path | None, mask: np.ndarray | None = None) -> None:
    """Raise :class:`InputError` if ``qsm`` (as stored, in ``units``) has implausible values once in ppb."""
    p99 = qsm_p99(qsm, mask)
    if p99 is None:
        return
    low, high = PLAUSIBLE_P99_PPB
    p99_ppb = p99 * _TO_PPB[units]
    if low <= p99_ppb <= high:
        return
    suggested = detect_qsm_units(qsm, mask)
    plausible = low <= p99 * _TO_PPB[suggested] <= high
    raise InputError(
        path,
        f"QSM values do not fit units {units!r}: the brain's 99th percentile of |chi| would be {p99_ppb:.3g} ppb "
        f"(plausible: {low:g} to {high:g} ppb); "
        + (f"the values suggest {suggested!r}" if plausible and suggested != units else "the values fit no QSM units"),
    )
