"""QSM units: detect ppm vs ppb, convert to ppb (the unit we report in)."""

from typing import Literal

import numpy as np

QsmUnits = Literal["ppm", "ppb"]
#: A brain whose 99th percentile of |chi| is below this is in ppm (domain.md).
PPM_THRESHOLD = 5.0


def detect_qsm_units(qsm: np.ndarray, mask: np.ndarray | None = None) -> QsmUnits:
    """Guess the units of a QSM map from the 99th percentile of |chi| inside ``mask``."""
    values = np.abs(qsm[mask] if mask is not None and mask.any() else qsm[qsm != 0])
    if values.size == 0:
        return "ppb"
    return "ppm" if float(np.percentile(values, 99)) < PPM_THRESHOLD else "ppb"


def to_ppb(qsm: np.ndarray, units: QsmUnits) -> np.ndarray:
    """Convert a QSM map in ``units`` to ppb."""
    if units not in ("ppm", "ppb"):
        raise ValueError(f"QSM units must be 'ppm' or 'ppb', not {units!r}")
    return qsm * np.float32(1000.0) if units == "ppm" else qsm
